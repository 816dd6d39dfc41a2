package archive

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zest-attest/zest/verifier/failure"
)

// TestStoreKill9: a writer process is killed with SIGKILL while appending;
// every round it reported committed is present and verifies, on SQLite and
// PostgreSQL.
func TestStoreKill9(t *testing.T) {
	if os.Getenv("ZEST_WRITER_CHILD") != "" {
		return
	}
	for _, b := range []struct {
		name string
		dsn  func(testing.TB) string
	}{{"sqlite", sqliteDSN}, {"postgres", pgDSN}} {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			dsn := b.dsn(t)
			st := openTestStore(t, dsn)
			keyPEM, _ := GenerateKeyPEM("ecdsa-p256")
			keyFile := t.TempDir() + "/k.pem"
			os.WriteFile(keyFile, keyPEM, 0o600)
			cmd := exec.Command(os.Args[0], "-test.run=^TestStoreWriterChild$")
			cmd.Env = append(os.Environ(), "ZEST_WRITER_CHILD="+dsn, "ZEST_WRITER_KEY="+keyFile)
			out, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			committed := map[uint64]bool{}
			sc := bufio.NewScanner(out)
			deadline := time.Now().Add(20 * time.Second)
			for sc.Scan() && time.Now().Before(deadline) {
				if seq, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
					n, _ := strconv.ParseUint(seq, 10, 64)
					committed[n] = true
					if len(committed) == 40 {
						break
					}
				}
			}
			cmd.Process.Kill()
			cmd.Wait()
			if len(committed) < 40 {
				t.Fatalf("writer committed only %d rounds", len(committed))
			}
			s, _ := ParseSigner(keyPEM)
			keys := keyringOf(t, s)
			found := map[uint64]bool{}
			err := st.Scan(ctx, Query{Kind: KindRound, AgentID: "crash"}, func(sr *Stored) error {
				if _, err := sr.Record.Open(keys); err != nil {
					return err
				}
				found[sr.Record.Seq] = true
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for seq := range committed {
				if !found[seq] {
					t.Errorf("committed round %d lost", seq)
				}
			}
			status, _ := st.Status(ctx)
			if status.Backlog[LogLocal] != status.Rounds {
				t.Errorf("outbox rows %d for %d rounds", status.Backlog[LogLocal], status.Rounds)
			}
			t.Logf("%d reported committed, %d stored", len(committed), len(found))
		})
	}
}

// TestStoreWriterChild appends rounds one transaction at a time until
// killed, reporting each commit on stdout.
func TestStoreWriterChild(t *testing.T) {
	dsn := os.Getenv("ZEST_WRITER_CHILD")
	if dsn == "" {
		t.Skip("run by TestStoreKill9")
	}
	st, err := OpenStore(context.Background(), dsn, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadSigner(os.Getenv("ZEST_WRITER_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); ; seq++ {
		e := round(t, s, "crash", seq, t0.Add(time.Duration(seq)*time.Second), 0, 50, failure.VerdictTrusted)
		if _, err := st.Append(context.Background(), LogLocal, []Entry{e}); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("committed %d\n", seq)
	}
}
