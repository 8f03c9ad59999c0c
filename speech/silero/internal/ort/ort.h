// A minimal declaration of the onnxruntime C API (include/onnxruntime/core/
// session/onnxruntime_c_api.h) for the few functions this package calls.
//
// OrtApi is a struct of function pointers that onnxruntime only ever
// appends to, so a function's position is fixed for all later versions:
// the positions below (counted in the upstream header) are those of API
// version 1 to 17, and ort_test.go checks the functions answer as expected.
#ifndef GOVLINE_ORT_H
#define GOVLINE_ORT_H

#include <stddef.h>
#include <stdint.h>

// The API version asked for: onnxruntime 1.17 (what sherpa-onnx-go-linux
// v1.12.15 ships) serves versions 1 to 17.
#define ORT_API_VERSION_USED 17

typedef struct OrtEnv OrtEnv;
typedef struct OrtStatus OrtStatus;
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtSession OrtSession;
typedef struct OrtValue OrtValue;
typedef struct OrtRunOptions OrtRunOptions;
typedef struct OrtTypeInfo OrtTypeInfo;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtAllocator OrtAllocator;

typedef struct OrtApiBase {
	const void *(*GetApi)(uint32_t version);
	const char *(*GetVersionString)(void);
} OrtApiBase;

// Positions in OrtApi.
enum {
	ORT_GetErrorMessage = 2,
	ORT_CreateEnv = 3,
	ORT_CreateSession = 7,
	ORT_CreateSessionFromArray = 8,
	ORT_Run = 9,
	ORT_CreateSessionOptions = 10,
	ORT_SetSessionGraphOptimizationLevel = 23,
	ORT_SetIntraOpNumThreads = 24,
	ORT_SetInterOpNumThreads = 25,
	ORT_SessionGetInputCount = 30,
	ORT_SessionGetOutputCount = 31,
	ORT_SessionGetInputTypeInfo = 33,
	ORT_SessionGetOutputTypeInfo = 34,
	ORT_SessionGetInputName = 36,
	ORT_SessionGetOutputName = 37,
	ORT_CreateTensorWithDataAsOrtValue = 49,
	ORT_CastTypeInfoToTensorInfo = 55,
	ORT_GetTensorElementType = 60,
	ORT_GetDimensionsCount = 61,
	ORT_GetDimensions = 62,
	ORT_CreateCpuMemoryInfo = 69,
	ORT_AllocatorFree = 76,
	ORT_GetAllocatorWithDefaultOptions = 78,
	ORT_ReleaseEnv = 92,
	ORT_ReleaseStatus = 93,
	ORT_ReleaseMemoryInfo = 94,
	ORT_ReleaseSession = 95,
	ORT_ReleaseValue = 96,
	ORT_ReleaseTypeInfo = 98,
	ORT_ReleaseSessionOptions = 100,
};

// Enumerations used (values from the upstream header).
enum { ORT_LOGGING_LEVEL_ERROR = 3 };
enum { ORT_ENABLE_ALL = 99 };
enum { OrtDeviceAllocator = 0 };
enum { OrtMemTypeDefault = 0 };
enum { ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT = 1, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 = 7 };

// The functions of ort.c (each returns NULL or an error message that the
// caller frees).
const char *ort_init(const char **version);
const char *ort_new_session(const char *path, int threads, OrtSession **out);
const char *ort_new_session_bytes(const void *model, size_t n, int threads, OrtSession **out);
void ort_release_session(OrtSession *s);
const char *ort_io_count(OrtSession *s, int output, size_t *n);
const char *ort_io_info(OrtSession *s, int output, size_t i, char **name, int *elem, int64_t *dims, size_t *ndims);
const char *ort_new_tensor(void *data, size_t bytes, const int64_t *shape, size_t ndims, int elem, OrtValue **out);
void ort_release_value(OrtValue *v);
const char *ort_run(OrtSession *s, const char *const *in_names, OrtValue *const *in, size_t nin,
	const char *const *out_names, OrtValue **out, size_t nout);

#endif
