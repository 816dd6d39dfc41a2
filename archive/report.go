package archive

import (
	"fmt"
	"html/template"
	"io"
	"time"

	"github.com/zest-attest/zest/verifier/failure"
)

// WriteHTML renders a replay report as one self-contained HTML page (no
// scripts, no external resources): a timeline of the window (trusted,
// rejected, error, gaps), the gaps, every failure, policy changes and the
// proof status of each round.
func WriteHTML(w io.Writer, rep *Report) error {
	type seg struct {
		Left, Width  float64
		Class, Title string
	}
	span := rep.To.Sub(rep.From)
	if span <= 0 {
		span = time.Second
	}
	pos := func(t time.Time) float64 {
		p := float64(t.Sub(rep.From)) / float64(span) * 100
		return min(max(p, 0), 100)
	}
	var segs []seg
	for i, o := range rep.Outcomes {
		end := rep.To
		if i+1 < len(rep.Outcomes) {
			end = rep.Outcomes[i+1].Time
		}
		class := o.Verdict.String()
		segs = append(segs, seg{Left: pos(o.Time), Width: max(pos(end)-pos(o.Time), 0.05), Class: class,
			Title: fmt.Sprintf("round %d at %s: %s", o.Seq, o.Time.Format(time.RFC3339), class)})
	}
	for _, g := range rep.Gaps {
		segs = append(segs, seg{Left: pos(g.From), Width: max(pos(g.To)-pos(g.From), 0.05), Class: "gap",
			Title: fmt.Sprintf("gap %s – %s (%s)", g.From.Format(time.RFC3339), g.To.Format(time.RFC3339), g.Duration)})
	}
	type change struct {
		Seq         uint64
		Time        time.Time
		Runtime, MB Ref
	}
	var changes []change
	var lastRT, lastMB Ref
	var failed []Outcome
	unproven := 0
	for i, o := range rep.Outcomes {
		if i == 0 || o.RuntimePolicy != lastRT || o.MBPolicy != lastMB {
			changes = append(changes, change{o.Seq, o.Time, o.RuntimePolicy, o.MBPolicy})
			lastRT, lastMB = o.RuntimePolicy, o.MBPolicy
		}
		if o.Verdict != failure.VerdictTrusted {
			failed = append(failed, o)
		}
		if len(o.Proofs) == 0 {
			unproven++
		}
	}
	return reportTmpl.Execute(w, map[string]any{
		"R": rep, "Segs": segs, "Changes": changes, "Failed": failed, "Unproven": unproven,
		"Fmt": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	})
}

var reportTmpl = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>zest archive: {{.R.AgentID}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:70em}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}
.verdict{font-size:1.2em;padding:.4em .8em;display:inline-block;border-radius:4px;color:#fff}
.ok{background:#2e7d32}.bad{background:#c62828}
.timeline{position:relative;height:34px;background:#eee;border:1px solid #999;margin:.5em 0}
.timeline div{position:absolute;top:0;bottom:0}
.trusted{background:#43a047}.rejected{background:#e53935}.error{background:#fb8c00}.gap{background:repeating-linear-gradient(45deg,#bbb,#bbb 4px,#eee 4px,#eee 8px)}
.legend span{display:inline-block;width:1em;height:1em;vertical-align:middle;margin:0 .3em 0 1em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
code{font-size:.9em}
</style></head><body>
<h1>Attestation timeline of {{.R.AgentID}}</h1>
<p>{{call .Fmt .R.From}} – {{call .Fmt .R.To}}</p>
<p class="verdict {{if .R.Continuous}}ok{{else}}bad{{end}}">{{if .R.Continuous}}Continuously attested{{else}}Not continuously attested{{end}}</p>
<p>{{.R.Rounds}} rounds: {{.R.Trusted}} trusted, {{.R.Rejected}} rejected, {{.R.Errors}} errors; {{len .R.Gaps}} gaps;
{{.R.Registrations}} registrations; {{if .R.Reverified}}evidence re-evaluated by the verifier{{else}}verdicts as recorded (signatures and proofs checked, evidence not re-evaluated){{end}}.</p>
<div class="timeline">{{range .Segs}}<div class="{{.Class}}" style="left:{{printf "%.3f" .Left}}%;width:{{printf "%.3f" .Width}}%" title="{{.Title}}"></div>{{end}}</div>
<p class="legend"><span class="trusted"></span>trusted<span class="rejected"></span>rejected<span class="error"></span>error<span class="gap"></span>gap</p>
<h2>Gaps</h2>
{{if .R.Gaps}}<table><tr><th>from</th><th>to</th><th>length</th></tr>{{range .R.Gaps}}<tr><td>{{call $.Fmt .From}}</td><td>{{call $.Fmt .To}}</td><td>{{.Duration}}</td></tr>{{end}}</table>{{else}}<p>None.</p>{{end}}
<h2>Failures</h2>
{{if .Failed}}<table><tr><th>round</th><th>time</th><th>verdict</th><th>failures</th></tr>{{range .Failed}}<tr><td>{{.Seq}}</td><td>{{call $.Fmt .Time}}</td><td>{{.Verdict}}</td><td>{{range .Failures}}<code>{{.ID}}</code>: {{.Message}}<br>{{end}}</td></tr>{{end}}</table>{{else}}<p>None.</p>{{end}}
{{if .R.Problems}}<h2>Archive problems</h2><ul>{{range .R.Problems}}<li><code>{{.ID}}</code>: {{.Message}}</li>{{end}}</ul>{{end}}
<h2>Policies</h2>
<table><tr><th>from round</th><th>time</th><th>runtime policy</th><th>measured-boot policy</th></tr>{{range .Changes}}<tr><td>{{.Seq}}</td><td>{{call $.Fmt .Time}}</td><td><code>{{.Runtime}}</code></td><td><code>{{.MB}}</code></td></tr>{{end}}</table>
<h2>Transparency</h2>
<p>{{if .Unproven}}{{.Unproven}} of {{.R.Rounds}} rounds lack a verified inclusion proof.{{else}}Every round has a verified inclusion proof.{{end}}</p>
</body></html>
`))
