package supervisor

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRestartsLeakNothing restarts a command 200 times through Control
// and checks that goroutines, fds and children come back to what they were,
// then stops it for good.
func TestRestartsLeakNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 200 processes")
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1)")
	}
	ctl := NewControl(0)
	sigs := make(chan os.Signal, 8)
	defer signal.Stop(sigs)
	c := Command{Args: []string{sleep, "1000"}, Env: []string{"A=0"}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Control: ctl, StopTimeout: time.Minute}
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := Run(c, sigs)
		done <- result{code, err}
	}()
	<-ctl.Started()
	restart := func(n int) {
		for range n {
			pid := ctl.PID()
			if err := ctl.Restart([]string{"A=1"}); err != nil {
				t.Fatal(err)
			}
			if ctl.PID() == pid {
				t.Fatal("the pid did not change")
			}
		}
	}
	restart(5) // warm up
	goroutines, fds := runtime.NumGoroutine(), countFDs(t)
	restart(200)
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > goroutines || countFDs(t) > fds || len(zombies(t)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after 200 restarts: %d goroutines (%d before), %d fds (%d before), zombies %v",
				runtime.NumGoroutine(), goroutines, countFDs(t), fds, zombies(t))
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctl.Stop(125)
	select {
	case r := <-done:
		if r.code != 125 || r.err != nil {
			t.Errorf("Run = %d, %v; want 125 after Stop", r.code, r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after Stop")
	}
	if err := ctl.Restart(nil); err == nil {
		t.Error("Restart after Run returned: no error")
	}
}

func countFDs(t *testing.T) int {
	e, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc")
	}
	return len(e)
}

// zombies lists this process's children that are zombies.
func zombies(t *testing.T) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(os.Getpid()) {
			out = append(out, pid)
		}
	}
	return out
}
