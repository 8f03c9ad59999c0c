// Package kamailio holds the Kamailio configuration that puts several ivrd
// engines behind one SIP address (kamailio.cfg, dispatcher.list; see
// docs/scale-out.md) and its tests: the configuration is checked by the
// installed Kamailio, and a call through it reaches a live engine when
// another is down.
package kamailio
