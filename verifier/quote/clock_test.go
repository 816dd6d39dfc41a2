package quote

import (
	"slices"
	"testing"
)

// TestCheckClock covers the clock rule, including a clear safe flag, which
// the simulator only produces after a disorderly shutdown.
func TestCheckClock(t *testing.T) {
	base := ClockInfo{Clock: 1000, ResetCount: 5, RestartCount: 2, Safe: true}
	with := func(f func(*ClockInfo)) ClockInfo { c := base; f(&c); return c }
	tests := []struct {
		name     string
		cur      ClockInfo
		prev     *ClockInfo
		want     []string
		rebooted bool
	}{
		{"first round", base, nil, nil, false},
		{"first round, safe clear", with(func(c *ClockInfo) { c.Safe = false }), nil, []string{"clock_safe"}, false},
		{"advance", with(func(c *ClockInfo) { c.Clock = 2000 }), &base, nil, false},
		{"resume (restart+1)", with(func(c *ClockInfo) { c.Clock, c.RestartCount = 2000, 3 }), &base, nil, false},
		{"reboot: reset+1, restart back to 0", with(func(c *ClockInfo) { c.Clock, c.ResetCount, c.RestartCount = 2000, 6, 0 }), &base, nil, true},
		{"reboot but clock backwards", with(func(c *ClockInfo) { c.Clock, c.ResetCount, c.RestartCount = 10, 6, 0 }), &base, []string{"clock"}, true},
		{"clock backwards", with(func(c *ClockInfo) { c.Clock = 999 }), &base, []string{"clock"}, false},
		{"clock equal", base, &base, []string{"clock"}, false},
		{"safe clear", with(func(c *ClockInfo) { c.Clock, c.Safe = 2000, false }), &base, []string{"clock_safe"}, false},
		{"reset decreased", with(func(c *ClockInfo) { c.Clock, c.ResetCount = 2000, 4 }), &base, []string{"reset_count"}, false},
		{"restart decreased without reset", with(func(c *ClockInfo) { c.Clock, c.RestartCount = 2000, 1 }), &base, []string{"restart_count"}, false},
		{"everything wrong", ClockInfo{Clock: 1, ResetCount: 1}, &base, []string{"clock_safe", "reset_count", "clock"}, false},
	}
	for _, tt := range tests {
		var got []string
		rebooted := checkClock(tt.cur, tt.prev, func(id, check string, ctx map[string]any, format string, args ...any) {
			got = append(got, check)
		})
		if !slices.Equal(got, tt.want) || rebooted != tt.rebooted {
			t.Errorf("%s: checks %v rebooted %v, want %v %v", tt.name, got, rebooted, tt.want, tt.rebooted)
		}
	}
}
