#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "ort.h"

static const void *const *api;
static OrtEnv *env;
static OrtMemoryInfo *cpu;

#define FN(type, name) ((type)api[ORT_##name])

static char *dupmsg(const char *prefix, const char *msg) {
	size_t n = strlen(prefix) + strlen(msg) + 1;
	char *s = malloc(n);
	if (s) {
		strcpy(s, prefix);
		strcat(s, msg);
	}
	return s;
}

// status turns an OrtStatus into an error message (NULL for success).
static const char *status(OrtStatus *st) {
	if (!st) return NULL;
	const char *m = FN(const char *(*)(const OrtStatus *), GetErrorMessage)(st);
	char *s = dupmsg("onnxruntime: ", m);
	FN(void (*)(OrtStatus *), ReleaseStatus)(st);
	return s;
}

const char *ort_init(const char **version) {
	// libonnxruntime.so is normally in the process already (linked with
	// sherpa-onnx); else it is looked up by name on the library path.
	typedef const OrtApiBase *(*getbase)(void);
	getbase f = (getbase)dlsym(RTLD_DEFAULT, "OrtGetApiBase");
	if (!f) {
		void *h = dlopen("libonnxruntime.so", RTLD_NOW | RTLD_GLOBAL);
		if (!h) return dupmsg("onnxruntime: ", dlerror());
		f = (getbase)dlsym(h, "OrtGetApiBase");
		if (!f) return dupmsg("onnxruntime: ", "no OrtGetApiBase in libonnxruntime.so");
	}
	const OrtApiBase *base = f();
	*version = base->GetVersionString();
	api = (const void *const *)base->GetApi(ORT_API_VERSION_USED);
	if (!api) return dupmsg("onnxruntime: the library does not offer API version 17; it is ", *version);
	const char *err = status(FN(OrtStatus *(*)(int, const char *, OrtEnv **), CreateEnv)(ORT_LOGGING_LEVEL_ERROR, "govline-ivr", &env));
	if (err) return err;
	return status(FN(OrtStatus *(*)(int, int, OrtMemoryInfo **), CreateCpuMemoryInfo)(OrtDeviceAllocator, OrtMemTypeDefault, &cpu));
}

// options makes the session options: threads intra-op threads, one
// inter-op thread, every graph optimization.
static const char *options(int threads, OrtSessionOptions **out) {
	OrtSessionOptions *o = NULL;
	const char *err = status(FN(OrtStatus *(*)(OrtSessionOptions **), CreateSessionOptions)(&o));
	if (err) return err;
	err = status(FN(OrtStatus *(*)(OrtSessionOptions *, int), SetIntraOpNumThreads)(o, threads));
	if (!err) err = status(FN(OrtStatus *(*)(OrtSessionOptions *, int), SetInterOpNumThreads)(o, 1));
	if (!err) err = status(FN(OrtStatus *(*)(OrtSessionOptions *, int), SetSessionGraphOptimizationLevel)(o, ORT_ENABLE_ALL));
	if (err) {
		FN(void (*)(OrtSessionOptions *), ReleaseSessionOptions)(o);
		return err;
	}
	*out = o;
	return NULL;
}

const char *ort_new_session_bytes(const void *model, size_t n, int threads, OrtSession **out) {
	OrtSessionOptions *o = NULL;
	const char *err = options(threads, &o);
	if (err) return err;
	err = status(FN(OrtStatus *(*)(const OrtEnv *, const void *, size_t, const OrtSessionOptions *, OrtSession **), CreateSessionFromArray)(env, model, n, o, out));
	FN(void (*)(OrtSessionOptions *), ReleaseSessionOptions)(o);
	return err;
}

const char *ort_new_session(const char *path, int threads, OrtSession **out) {
	OrtSessionOptions *o = NULL;
	const char *err = options(threads, &o);
	if (err) return err;
	err = status(FN(OrtStatus *(*)(const OrtEnv *, const char *, const OrtSessionOptions *, OrtSession **), CreateSession)(env, path, o, out));
	FN(void (*)(OrtSessionOptions *), ReleaseSessionOptions)(o);
	return err;
}

void ort_release_session(OrtSession *s) { FN(void (*)(OrtSession *), ReleaseSession)(s); }

const char *ort_io_count(OrtSession *s, int output, size_t *n) {
	if (output) return status(FN(OrtStatus *(*)(const OrtSession *, size_t *), SessionGetOutputCount)(s, n));
	return status(FN(OrtStatus *(*)(const OrtSession *, size_t *), SessionGetInputCount)(s, n));
}

// ort_io_info fills the name (malloc'd, the caller frees), element type and
// shape (at most *ndims dimensions; -1 for a dynamic one) of an input or
// output.
const char *ort_io_info(OrtSession *s, int output, size_t i, char **name, int *elem, int64_t *dims, size_t *ndims) {
	OrtAllocator *a = NULL;
	const char *err = status(FN(OrtStatus *(*)(OrtAllocator **), GetAllocatorWithDefaultOptions)(&a));
	if (err) return err;
	char *n = NULL;
	typedef OrtStatus *(*namefn)(const OrtSession *, size_t, OrtAllocator *, char **);
	err = status(output ? FN(namefn, SessionGetOutputName)(s, i, a, &n) : FN(namefn, SessionGetInputName)(s, i, a, &n));
	if (err) return err;
	*name = strdup(n);
	FN(OrtStatus *(*)(OrtAllocator *, void *), AllocatorFree)(a, n);
	OrtTypeInfo *ti = NULL;
	typedef OrtStatus *(*typefn)(const OrtSession *, size_t, OrtTypeInfo **);
	err = status(output ? FN(typefn, SessionGetOutputTypeInfo)(s, i, &ti) : FN(typefn, SessionGetInputTypeInfo)(s, i, &ti));
	if (err) return err;
	const OrtTensorTypeAndShapeInfo *tt = NULL;
	err = status(FN(OrtStatus *(*)(const OrtTypeInfo *, const OrtTensorTypeAndShapeInfo **), CastTypeInfoToTensorInfo)(ti, &tt));
	if (!err && !tt) err = dupmsg("onnxruntime: ", "not a tensor");
	if (!err) err = status(FN(OrtStatus *(*)(const OrtTensorTypeAndShapeInfo *, int *), GetTensorElementType)(tt, elem));
	size_t nd = 0;
	if (!err) err = status(FN(OrtStatus *(*)(const OrtTensorTypeAndShapeInfo *, size_t *), GetDimensionsCount)(tt, &nd));
	if (!err && nd > *ndims) err = dupmsg("onnxruntime: ", "too many dimensions");
	if (!err) {
		err = status(FN(OrtStatus *(*)(const OrtTensorTypeAndShapeInfo *, int64_t *, size_t), GetDimensions)(tt, dims, nd));
		*ndims = nd;
	}
	FN(void (*)(OrtTypeInfo *), ReleaseTypeInfo)(ti);
	return err;
}

const char *ort_new_tensor(void *data, size_t bytes, const int64_t *shape, size_t ndims, int elem, OrtValue **out) {
	return status(FN(OrtStatus *(*)(const OrtMemoryInfo *, void *, size_t, const int64_t *, size_t, int, OrtValue **),
		CreateTensorWithDataAsOrtValue)(cpu, data, bytes, shape, ndims, elem, out));
}

void ort_release_value(OrtValue *v) { FN(void (*)(OrtValue *), ReleaseValue)(v); }

const char *ort_run(OrtSession *s, const char *const *in_names, OrtValue *const *in, size_t nin,
	const char *const *out_names, OrtValue **out, size_t nout) {
	return status(FN(OrtStatus *(*)(OrtSession *, const OrtRunOptions *, const char *const *, const OrtValue *const *, size_t,
		const char *const *, size_t, OrtValue **), Run)(s, NULL, in_names, (const OrtValue *const *)in, nin, out_names, nout, out));
}
