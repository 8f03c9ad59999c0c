package audio

import "math"

// RMS returns the root mean square of pcm (0 for an empty slice), in the
// sample scale (full-scale sine: about 23170).
func RMS(pcm []int16) float64 {
	if len(pcm) == 0 {
		return 0
	}
	var sum float64
	for _, s := range pcm {
		v := float64(s)
		sum += v * v
	}
	return math.Sqrt(sum / float64(len(pcm)))
}

// DBFS returns the level of pcm in dB relative to a full-scale square wave
// (a full-scale sine is about −3 dBFS; silence is −Inf).
func DBFS(pcm []int16) float64 {
	return 20 * math.Log10(RMS(pcm)/32768)
}
