package main

import (
	"fmt"
	"io"

	"github.com/pstate/pstate/checkpoint"
	"github.com/pstate/pstate/pstate"
)

// decodeBackup reads a backup (the snapshot format of GET /v1/snapshot)
// whole: the header, every checksummed chunk, the state it holds and the
// trailer. name is used in messages.
func decodeBackup(r io.Reader, name string) (checkpoint.Meta, *pstate.State, error) {
	var meta checkpoint.Meta
	var st *pstate.State
	err := checkpoint.Decode(r, func(m checkpoint.Meta, body io.Reader) error {
		s, err := pstate.DecodeSnapshot(body, m.Seq)
		if err != nil {
			return err
		}
		meta, st = m, s
		return nil
	})
	if err != nil {
		return checkpoint.Meta{}, nil, fmt.Errorf("decode backup %s: %w", name, err)
	}
	if st.Seq() != meta.Seq {
		return checkpoint.Meta{}, nil, fmt.Errorf("decode backup %s: header says seq %d, "+
			"state holds seq %d", name, meta.Seq, st.Seq())
	}
	return meta, st, nil
}

// checkBackup decodes a downloaded backup and returns its seq.
func checkBackup(r io.Reader, name string) (uint64, error) {
	meta, _, err := decodeBackup(r, name)
	return meta.Seq, err
}
