package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
)

// writeOutput writes data to path atomically (temp file in the same
// directory, fsync, rename), or to stdout when path is "" or "-". Nothing is
// left behind on failure, so a failed run never leaves a half-written policy.
func (a *app) writeOutput(path string, data []byte) error {
	if path == "" || path == "-" {
		_, err := a.stdout.Write(data)
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	ok = true
	return nil
}

// progress draws "files, bytes, rate" on a terminal; it implements
// digests.Progress. When stderr is not a terminal or --quiet is set it only
// counts.
type progress struct {
	files, bytes atomic.Int64
	total        atomic.Int64 // items expected, 0 if unknown
	unit         string
	a            *app
	label        string
	start        time.Time
	stop         chan struct{}
	done         sync.WaitGroup
}

func (a *app) startProgress(label string) *progress {
	return a.startProgressUnit(label, "files")
}

// startProgressUnit counts items in unit ("packages") and shows items/s
// and an ETA once a source announces its total.
func (a *app) startProgressUnit(label, unit string) *progress {
	p := &progress{a: a, label: label, unit: unit, start: time.Now(), stop: make(chan struct{})}
	if a.progressAllowed() {
		p.done.Add(1)
		go p.loop()
	}
	return p
}

func (p *progress) Add(files, bytes int64) {
	p.files.Add(files)
	p.bytes.Add(bytes)
}

// SetTotal implements digests.ProgressTotal.
func (p *progress) SetTotal(n int64) { p.total.Store(n) }

func (p *progress) loop() {
	defer p.done.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			fmt.Fprint(p.a.stderr, "\r\033[K")
			return
		case <-t.C:
			el := time.Since(p.start).Seconds()
			b, n, total := p.bytes.Load(), p.files.Load(), p.total.Load()
			rate := float64(n) / el
			line := fmt.Sprintf("%s: %d %s (%.0f/s), %s, %s/s", p.label, n, p.unit, rate, humanBytes(b), humanBytes(int64(float64(b)/el)))
			if total > 0 && rate > 0 && n <= total {
				eta := time.Duration(float64(total-n) / rate * float64(time.Second)).Round(time.Second)
				line = fmt.Sprintf("%s: %d/%d %s (%.0f/s, ETA %s), %s", p.label, n, total, p.unit, rate, eta, humanBytes(b))
			}
			fmt.Fprint(p.a.stderr, "\r\033[K"+line)
		}
	}
}

func (p *progress) Stop() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.done.Wait()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print zest's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := "(devel)"
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
				v = bi.Main.Version
			}
			fmt.Fprintf(a.stdout, "zest %s\n", v)
			return nil
		},
	}
}
