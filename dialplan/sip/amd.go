package sip

import (
	"github.com/govline/ivr/ivr/amd"
)

// Answering machine detection on the line's answered outbound calls
// (docs/operations.md, "Outbound calls"; docs/queue.md, "Call me back")
// is package ivr/amd, shared with the ARI and event socket adapters:
// Originate listens with amd.Detect before the flow starts when
// OutboundConfig.Machine is on, and a machine is hung up on without a
// word (OutboundMachine).

// MachineDetection tunes answering machine detection on answered outbound
// calls; the zero value of a duration means its default.
type MachineDetection = amd.Config

// Defaults of MachineDetection.
const (
	DefaultMachineSpeech  = amd.DefaultSpeech
	DefaultMachinePause   = amd.DefaultPause
	DefaultMachineSilence = amd.DefaultSilence
	DefaultMachineMax     = amd.DefaultMax
)

// detectMachine listens to c from now on and decides whether a person or
// a machine answered. It returns an error only when the call ended
// meanwhile (the citizen hung up).
func (s *Server) detectMachine(c *call, m MachineDetection) (amd.Result, error) {
	var newVAD amd.NewVAD
	if sc := s.eng.Speech; sc != nil {
		newVAD = sc.NewVAD
	}
	return amd.Detect(c.ctx, c, c.rate, m, newVAD, c.tr.Log())
}
