package mcp

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/hearthvm/hearth/internal/ops"
)

// inputSchema is the JSON Schema of an operation's request: inferred from
// the api type like the MCP SDK does, made portable (G5), with each
// argument's description, default (MCP's own where it has one, said so)
// and maximum from the operation table.
func inputSchema(op ops.Op) (*jsonschema.Schema, error) {
	s, err := jsonschema.ForType(op.RequestType(), nil)
	if err != nil {
		return nil, fmt.Errorf("infer schema for %s: %w", op.RequestType(), err)
	}
	portable(s)
	for _, a := range op.Args() {
		p := s.Properties[a.Name]
		if p == nil {
			continue
		}
		p.Description = a.Doc
		def := a.Default
		if n, ok := op.MCP[a.Name]; ok {
			def = strconv.FormatInt(n, 10)
			p.Description += fmt.Sprintf(" MCP default %s (the contract's default elsewhere is %s).", def, orNone(a.Default))
		}
		if def != "" {
			if a.Type == "integer" {
				p.Default = json.RawMessage(def)
			} else {
				b, _ := json.Marshal(def)
				p.Default = b
			}
		}
		if a.Max != "" {
			m, _ := strconv.ParseFloat(a.Max, 64)
			p.Maximum = &m
		}
	}
	return s, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// outputSchema is the JSON Schema of an operation's result.
func outputSchema(op ops.Op) (*jsonschema.Schema, error) {
	s, err := jsonschema.ForType(op.ResultType(), nil)
	if err != nil {
		return nil, fmt.Errorf("infer schema for %s: %w", op.ResultType(), err)
	}
	portable(s)
	return s, nil
}

// portable rewrites nullable arrays to plain arrays throughout s.
func portable(s *jsonschema.Schema) {
	if s == nil {
		return
	}
	if len(s.Types) == 2 && slices.Contains(s.Types, "null") && slices.Contains(s.Types, "array") {
		s.Types = nil
		s.Type = "array"
	}
	for _, p := range s.Properties {
		portable(p)
	}
	for _, d := range s.Defs {
		portable(d)
	}
	for _, list := range [][]*jsonschema.Schema{s.AnyOf, s.OneOf, s.AllOf, s.PrefixItems} {
		for _, x := range list {
			portable(x)
		}
	}
	portable(s.Items)
	portable(s.AdditionalProperties)
}
