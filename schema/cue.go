package schema

import (
	_ "embed"
	"fmt"
	"sync"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
)

//go:embed runtime_policy_v1.cue
var runtimePolicyCUE []byte

//go:embed mb_refstate_v1.cue
var mbRefstateCUE []byte

// compiled holds the schemas, built once per process on first use.
type compiled struct {
	// mu serialises every use of ctx and the values derived from it: CUE
	// evaluates lazily and mutates shared vertices, so a cue.Context is not
	// safe for concurrent use.
	mu  sync.Mutex
	ctx *cue.Context

	runtimePolicy cue.Value // #RuntimePolicy
	imaKeyring    cue.Value // #IMAKeyring
	mbSB          cue.Value // #MBRefstateSB
	mbNoSB        cue.Value // #MBRefstateNoSB

	// nodes caches per-schema-node facts (kind, attributes, fields) by
	// schema pattern; guarded by mu.
	nodes map[string]*node
}

var (
	compileOnce sync.Once
	schemas     *compiled
	compileErr  error
)

func load() (*compiled, error) {
	compileOnce.Do(func() { schemas, compileErr = compile() })
	return schemas, compileErr
}

func compile() (*compiled, error) {
	ctx := cuecontext.New()
	c := &compiled{ctx: ctx, nodes: make(map[string]*node)}
	rp := ctx.CompileBytes(runtimePolicyCUE, cue.Filename("runtime_policy_v1.cue"))
	if err := rp.Err(); err != nil {
		return nil, fmt.Errorf("schema: compile runtime_policy_v1.cue: %w", err)
	}
	mb := ctx.CompileBytes(mbRefstateCUE, cue.Filename("mb_refstate_v1.cue"))
	if err := mb.Err(); err != nil {
		return nil, fmt.Errorf("schema: compile mb_refstate_v1.cue: %w", err)
	}
	for _, d := range []struct {
		dst  *cue.Value
		root cue.Value
		name string
	}{
		{&c.runtimePolicy, rp, "#RuntimePolicy"},
		{&c.imaKeyring, rp, "#IMAKeyring"},
		{&c.mbSB, mb, "#MBRefstateSB"},
		{&c.mbNoSB, mb, "#MBRefstateNoSB"},
	} {
		v := d.root.LookupPath(cue.ParsePath(d.name))
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("schema: definition %s: %w", d.name, err)
		}
		*d.dst = v
	}
	return c, nil
}
