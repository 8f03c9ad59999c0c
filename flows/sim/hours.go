package sim

// HoursText is how the flows say the default working hours
// (tickets.DefaultCalendar), for the simulator and the tests; the engine
// takes its own from configuration.
var HoursText = map[string]string{
	"ro": "Operatorii sunt disponibili de luni până vineri, între orele 8 și 20",
	"en": "Our operators are available Monday to Friday, from 8 am to 8 pm",
}
