package sip

// SetTestHook makes the server call h where a bug could panic on one of
// its goroutines (see Server.testHook); nil removes it.
func SetTestHook(s *Server, h func(where, callID string)) {
	if h == nil {
		s.testHook.Store(nil)
		return
	}
	s.testHook.Store(&h)
}
