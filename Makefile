# The two commands a newcomer needs:
#   make run    start the engine on its embedded defaults (SIP on 127.0.0.1:5060)
#   make test   run every test
# Both install what is missing first (Debian packages with apt-get, Go modules
# through the module proxy).

GO       ?= go
# No build tag is needed (SQLite's FTS5 is in every build: internal/sqlitefts5);
# TAGS=... is passed on when given (TAGS=sqlite_fts5 uses the driver's own FTS5).
TAGS     ?=
GOFLAGS_ := $(if $(TAGS),-tags $(TAGS))
BIN      := bin
# Debian packages the project needs: cgo (gcc, pkg-config, libopus), prompt
# rendering (espeak-ng, sox), SIP load and interop tests (sip-tester = sipp),
# speech engines (libespeak-ng-dev, pocketsphinx), systemd-analyze for the
# installed unit's test (systemd), the PostgreSQL server that internal/pgtest
# starts for the store's conformance tests (postgresql: initdb and postgres in
# a temporary folder, no service needed), Kamailio for the shipped balancer
# configuration's tests (kamailio; run in the foreground, no service), the IMAP server
# that internal/imaptest starts for the e-mail channel's tests (dovecot-imapd: dovecot in
# the foreground from a temporary folder, no service). npm (for the VAD model) is
# not listed: machines often have Node.js from elsewhere, whose nodejs package
# conflicts with Debian's npm; `models` installs it only when npm is missing.
DEBS     := gcc pkg-config libopus-dev libopusfile-dev espeak-ng libespeak-ng-dev sox sip-tester libpocketsphinx-dev pocketsphinx-en-us chromium chromium-driver systemd postgresql kamailio dovecot-imapd
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test build deps models prompts bench fuzz vet clean eval install

run: deps build
	./$(BIN)/ivrd

build: deps
	$(GO) build $(GOFLAGS_) -o $(BIN)/ivrd ./cmd/ivrd
	$(GO) build $(GOFLAGS_) -o $(BIN)/ivrctl ./cmd/ivrctl

# models fetches the silero VAD model (speech/silero) from the npm package
# that ships it into var/models (git-ignored); npm itself comes from DEBS.
VAD_MODEL := var/models/silero_vad_v5.onnx
models:
	@if [ ! -s $(VAD_MODEL) ]; then \
		command -v npm >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends npm; }; \
		echo "fetching $(VAD_MODEL) (npm pack @ricky0123/vad-web@0.0.31)"; \
		tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent @ricky0123/vad-web@0.0.31 >/dev/null && \
			tar -xzf ricky0123-vad-web-0.0.31.tgz package/dist/silero_vad_v5.onnx) && \
		mkdir -p $(dir $(VAD_MODEL)) && mv $$tmp/package/dist/silero_vad_v5.onnx $(VAD_MODEL) && rm -rf $$tmp; \
	fi

# deps installs the Debian packages that are missing (apt-get update only
# when something must be installed).
deps: models
	@missing=""; for p in $(DEBS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing && \
		for s in kamailio postgresql dovecot-imapd; do \
			case " $$missing " in *" $$s "*) svc=$${s%-imapd}; [ -d /run/systemd/system ] && $(SUDO) systemctl disable --now $$svc >/dev/null 2>&1; echo "$$s installed for the tests; its system service is left off (make run listens on 127.0.0.1:5060)";; esac; \
		done; \
	fi
	@$(GO) mod download

vet: deps
	$(GO) vet $(GOFLAGS_) ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# Every package under the race detector: most of them run goroutines.
# dialplan/sip, the longest (real calls in real time, about 16 minutes on
# 2 cores), is named first so that it starts first; go test still prints
# each package's result in that order. A hung test fails after 20 minutes.
test: deps vet
	$(GO) test $(GOFLAGS_) -race -count=1 -timeout 20m ./dialplan/sip ./...

prompts: build
	./$(BIN)/ivrd -render-prompts

# Short runs of every fuzz target (go test runs their seed corpora anyway).
FUZZTIME ?= 20s
fuzz: deps
	@for pkg in $$($(GO) list $(GOFLAGS_) ./...); do \
		for f in $$($(GO) test $(GOFLAGS_) -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			$(GO) test $(GOFLAGS_) -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# Benchmarks: Go micro-benchmarks and the SIPp load runs; figures land in
# bench/*results.json (see docs/benchmarks.md).
bench: deps build
	$(GO) run $(GOFLAGS_) ./bench/cmd/ivrbench -out bench/results.json
	# Call setup through the shipped Kamailio, one and two engines on one
	# PostgreSQL, against one engine alone (about 4 minutes).
	$(GO) run $(GOFLAGS_) ./bench/cmd/ivrbench -cluster 50,100,150,200 -cluster-time 15s -out bench/cluster-results.json
	# The web chat: 2,000 idle and 200 active sessions on one engine with
	# 100 phone calls up (about 1 minute).
	$(GO) run $(GOFLAGS_) ./bench/cmd/ivrbench -chat 2000,200 -chat-calls 100 -chat-time 20s -out bench/chat-results.json
	# A line of callers who speak: 30 % of them at any moment, answering the
	# shipped menu with the speech test set's utterances; the shared and the
	# per-call VAD side by side at each level, then the line's own limit
	# (speech.max_calls) at 100 and 300 calls (about 15 minutes;
	# docs/benchmarks.md, "A line of callers who speak").
	$(GO) run $(GOFLAGS_) ./bench/cmd/ivrbench -speech -speaking 30 -calls 10,20,30 -vad shared,per-call -speech-max-calls -1 -hold 60s -setup-rate 0 -skip-micro -out bench/speech-results.json
	$(GO) run $(GOFLAGS_) ./bench/cmd/ivrbench -speech -speaking 30 -calls 10,100,300 -hold 60s -setup-rate 0 -skip-micro -out bench/speech-limit-results.json
	# The VAD's CPU per speaking caller at 1, 10, 100 and 300 callers in real
	# time: the per-call detector, the shared model with the file's graph and
	# with the batched graph (the default), and its two 8 kHz options, side by
	# side in one run (about 3 minutes; docs/benchmarks.md, "The shared VAD").
	$(GO) test $(GOFLAGS_) -run '^$$' -bench 'Paced' -benchtime 1x ./speech/silero/
	# Speech turn-taking on loopback calls: barge-in and turn latency,
	# concurrent listening calls (docs/speech.md).
	$(GO) test $(GOFLAGS_) -run '^$$' -bench 'BargeInLatency|TurnLatency|ListeningCalls' -benchtime 15x ./dialplan/sip/
	# No dead air: the shipped flow on a fresh line, alone and 20 callers
	# 300 ms apart (welcome, listening, next prompt, silences).
	$(GO) test $(GOFLAGS_) -run '^$$' -bench 'DeadAir' -benchtime 1x ./dialplan/sip/

# Knowledge base quality: top-1, top-3 and correct-"none" rates over the
# evaluation set flows/kb/eval/queries.txt (see docs/knowledge-base.md);
# fails below the targets. EVALFLAGS=-v lists every miss.
eval: deps
	$(GO) run $(GOFLAGS_) ./flows/kb/cmd/kbeval -dir flows/kb $(EVALFLAGS)

# install puts the engine where a Debian service lives: the binaries in
# PREFIX/bin (the speech libraries in PREFIX/lib/ivr), the flows (with the knowledge base and prompts) and the VAD
# model in PREFIX/share/ivr, the docs in PREFIX/share/doc/ivr, the systemd
# unit in PREFIX/lib/systemd/system, the configuration in
# SYSCONFDIR/ivr/ivrd.toml (kept when it exists) and the state folder
# LOCALSTATEDIR/lib/ivr; DESTDIR stages it all elsewhere (packaging, tests).
# Without DESTDIR, as root, it also creates the system user ivr. Then:
#   systemctl daemon-reload && systemctl enable --now ivrd
PREFIX        ?= /usr/local
SYSCONFDIR    ?= /etc
LOCALSTATEDIR ?= /var
UNITDIR       ?= $(PREFIX)/lib/systemd/system
IVR_USER      ?= ivr
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@LOCALSTATEDIR@|$(LOCALSTATEDIR)|g'
# The onnxruntime and sherpa-onnx libraries the speech engines link come
# with a Go module, whose folder the binaries' run path names (in the build
# user's module cache, which the service may not read): they are installed
# in PREFIX/lib/ivr, which the unit puts on LD_LIBRARY_PATH. The shared VAD
# (speech/silero/internal/ort) calls the same libonnxruntime.so, the copy
# the process already loaded for sherpa-onnx (else it opens it by name on
# that path): nothing more to install.
SHERPA_LIBS = $(shell $(GO) list -m -f '{{.Dir}}' github.com/k2-fsa/sherpa-onnx-go-linux)/lib/$(shell uname -m)-unknown-linux-gnu
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/ivr $(DESTDIR)$(PREFIX)/share/ivr/models $(DESTDIR)$(PREFIX)/share/doc/ivr \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/ivr
	install -m 0755 $(BIN)/ivrd $(BIN)/ivrctl $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(SHERPA_LIBS)/libonnxruntime.so $(SHERPA_LIBS)/libsherpa-onnx-c-api.so $(SHERPA_LIBS)/libsherpa-onnx-cxx-api.so $(DESTDIR)$(PREFIX)/lib/ivr/
	rm -rf $(DESTDIR)$(PREFIX)/share/ivr/flows
	cp -R flows $(DESTDIR)$(PREFIX)/share/ivr/flows
	find $(DESTDIR)$(PREFIX)/share/ivr/flows \( -name '*.go' -o -name testdata \) -prune -exec rm -rf {} +
	find $(DESTDIR)$(PREFIX)/share/ivr/flows -type d -empty -delete
	install -m 0644 $(VAD_MODEL) $(DESTDIR)$(PREFIX)/share/ivr/models/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/ivr/
	$(SUBST) deploy/ivrd.service > $(DESTDIR)$(UNITDIR)/ivrd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/ivrd.service
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/ivr/ivrd.toml ]; then \
		echo "kept $(DESTDIR)$(SYSCONFDIR)/ivr/ivrd.toml (the new default is ivrd.toml.dist beside it)"; \
		$(SUBST) deploy/ivrd.toml > $(DESTDIR)$(SYSCONFDIR)/ivr/ivrd.toml.dist; \
	else \
		$(SUBST) deploy/ivrd.toml > $(DESTDIR)$(SYSCONFDIR)/ivr/ivrd.toml; \
		chmod 0644 $(DESTDIR)$(SYSCONFDIR)/ivr/ivrd.toml; \
	fi
	install -d -m 0750 $(DESTDIR)$(LOCALSTATEDIR)/lib/ivr
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
		id -u $(IVR_USER) >/dev/null 2>&1 || useradd --system --home-dir $(LOCALSTATEDIR)/lib/ivr --no-create-home \
			--shell /usr/sbin/nologin --comment "govline IVR engine" $(IVR_USER); \
		chown $(IVR_USER):$(IVR_USER) $(LOCALSTATEDIR)/lib/ivr; \
	fi

clean:
	rm -rf $(BIN)
