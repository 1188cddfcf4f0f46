package publish

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"cel.dev/cel-go/cel"

	"github.com/exportbridge/exportbridge/internal/store"
)

// filterCostLimit bounds one evaluation of a subscription's filter, so an
// expression (from any API caller) cannot spend unbounded time per event.
const filterCostLimit = 100_000

// filterEnv declares what a filter sees: the event's stored body decoded
// as event (a raised event's is {id, topic, type, time, source, data,
// additionalMetadata}; a DataExport event's is its FinOps body), and its
// topic, type, source and subject.
//
// It is made on first use: building it costs every process megabytes at
// start, and most never compile a filter.
var filterEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("event", cel.DynType),
		cel.Variable("topic", cel.StringType),
		cel.Variable("type", cel.StringType),
		cel.Variable("source", cel.StringType),
		cel.Variable("subject", cel.StringType),
	)
})

// Filter is a compiled CEL expression that decides whether an event goes
// to a subscription.
type Filter struct {
	src string
	prg cel.Program
}

// CompileFilter compiles expr. Errors say where (line and column) and why.
func CompileFilter(expr string) (*Filter, error) {
	env, err := filterEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("filter: %w", iss.Err())
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("filter: the expression is a %s; it must be a bool", t)
	}
	prg, err := env.Program(ast, cel.CostLimit(filterCostLimit))
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	return &Filter{src: expr, prg: prg}, nil
}

// String returns the expression.
func (f *Filter) String() string { return f.src }

// activation is one event as filters see it, decoded once for every
// subscription that filters it.
type activation map[string]any

func newActivation(ev store.Event) activation {
	var body any
	if err := json.Unmarshal(ev.Body, &body); err != nil {
		body = nil
	}
	return activation{"event": body, "topic": ev.Topic, "type": ev.CEType, "source": ev.Source, "subject": ev.Subject}
}

// errNotBool: the expression gave something other than a bool.
var errNotBool = errors.New("filter: the expression did not give a bool")

// Match evaluates the filter. An expression that fails on an event (a
// field it lacks, a cost over the limit) does not match it: filters test
// optional fields with has().
func (f *Filter) Match(a activation) (bool, error) {
	out, _, err := f.prg.Eval(map[string]any(a))
	if err != nil {
		return false, fmt.Errorf("filter: %w", err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, errNotBool
	}
	return b, nil
}
