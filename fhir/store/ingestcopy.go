package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// This file writes prepared readings with COPY … FROM STDIN BINARY. A
// reading is encoded into its COPY tuple when it is prepared, as pgx's
// CopyFrom would encode its values at the commit: a batch waiting for its
// commit then holds one pointer-free buffer per reading instead of a row of
// boxed values and string arrays for the garbage collector to trace, and a
// commit only streams bytes. The column types come from the database, once
// (until then readings stay rows and are encoded by Write).

// copyFormat is how the ingest columns are encoded.
type copyFormat struct {
	oids []uint32 // per column
	sql  map[string]string
	// scratch holds *copyScratch: a pgtype.Map is not safe for concurrent
	// use, and a tuple is encoded aside, then copied to a buffer of its
	// size (append's doubling would keep up to twice the memory a reading
	// needs while it waits for its commit).
	scratch sync.Pool
}

type copyScratch struct {
	m   *pgtype.Map
	buf []byte
}

// maxScratch bounds the buffer a scratch keeps for the next tuple.
const maxScratch = 64 << 10

// copyHeader starts binary COPY data: signature, flags, header extension
// length (PostgreSQL COPY, "Binary Format").
const copyHeader = "PGCOPY\n\xff\r\n\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00"

// copyTrailer ends it: a tuple of -1 fields.
const copyTrailer = "\xff\xff"

// format returns the COPY format, asking the database for the column
// types the first time.
func (in *Ingester) format(ctx context.Context) (*copyFormat, error) {
	if f := in.copyFmt.Load(); f != nil {
		return f, nil
	}
	c, err := in.s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", translate(err))
	}
	defer c.Release()
	quoted := make([]string, len(in.cols))
	for i, col := range in.cols {
		quoted[i] = pgx.Identifier{col}.Sanitize()
	}
	list := strings.Join(quoted, ", ")
	sd, err := c.Conn().Prepare(ctx, "", "SELECT "+list+" FROM observation")
	if err != nil {
		return nil, fmt.Errorf("ingest: column types: %w", translate(err))
	}
	if len(sd.Fields) != len(in.cols) {
		return nil, fmt.Errorf("ingest: %d column types for %d columns", len(sd.Fields), len(in.cols))
	}
	f := &copyFormat{oids: make([]uint32, len(sd.Fields)), sql: map[string]string{}}
	for i, fd := range sd.Fields {
		f.oids[i] = fd.DataTypeOID
	}
	for _, table := range []string{"observation", "observation_stage"} {
		f.sql[table] = "COPY " + table + " (" + list + ") FROM STDIN BINARY"
	}
	f.scratch.New = func() any { return &copyScratch{m: pgtype.NewMap()} }
	in.copyFmt.CompareAndSwap(nil, f)
	return in.copyFmt.Load(), nil
}

// encode returns row as a COPY tuple, and where the values of last_updated
// and content start in it.
func (f *copyFormat) encode(row []any) (tuple []byte, lastUpdated, content int, err error) {
	sc, _ := f.scratch.Get().(*copyScratch)
	defer f.scratch.Put(sc)
	buf := binary.BigEndian.AppendUint16(sc.buf[:0], uint16(len(row))) //nolint:gosec // a table has fewer than 1,600 columns
	for i, v := range row {
		switch i {
		case colLastUpdated:
			lastUpdated = len(buf) + 4
		case colContent:
			content = len(buf) + 4
		}
		if b, ok := appendValue(buf, f.oids[i], v); ok {
			buf = b
			continue
		}
		// What pgx's CopyFrom does with a value (encodeCopyValue).
		at := len(buf)
		buf = binary.BigEndian.AppendUint32(buf, 0xffffffff) // NULL unless encoded
		enc, err := sc.m.Encode(f.oids[i], pgtype.BinaryFormatCode, v, buf)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("encode column %d: %w", i, err)
		}
		if enc != nil {
			buf = enc
			binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-4)) //nolint:gosec // a value is under 1 GB
		}
	}
	if cap(buf) <= maxScratch {
		sc.buf = buf
	}
	return append(make([]byte, 0, len(buf)), buf...), lastUpdated, content, nil
}

// appendValue appends v as a field of a COPY tuple for a column of type
// oid, as pgtype encodes it, for the types and values device rows hold;
// false leaves the value to pgtype.
func appendValue(buf []byte, oid uint32, v any) ([]byte, bool) {
	const null = 0xffffffff
	switch oid {
	case pgtype.TextOID, pgtype.VarcharOID:
		switch x := v.(type) {
		case string:
			return append(binary.BigEndian.AppendUint32(buf, uint32(len(x))), x...), true //nolint:gosec // a value is under 1 GB
		case []byte:
			if x == nil {
				return binary.BigEndian.AppendUint32(buf, null), true
			}
			return append(binary.BigEndian.AppendUint32(buf, uint32(len(x))), x...), true //nolint:gosec // a value is under 1 GB
		case *string:
			if x == nil {
				return binary.BigEndian.AppendUint32(buf, null), true
			}
			return append(binary.BigEndian.AppendUint32(buf, uint32(len(*x))), *x...), true //nolint:gosec // a value is under 1 GB
		}
	case pgtype.Int8OID:
		if x, ok := v.(int64); ok {
			return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(buf, 8), uint64(x)), true //nolint:gosec // two's complement, as PostgreSQL reads it
		}
	case pgtype.TimestamptzOID:
		switch x := v.(type) {
		case time.Time:
			return appendTimestamptz(buf, x), true
		case *time.Time:
			if x == nil {
				return binary.BigEndian.AppendUint32(buf, null), true
			}
			return appendTimestamptz(buf, *x), true
		}
	case pgtype.TextArrayOID:
		if x, ok := v.([]string); ok {
			if x == nil {
				return binary.BigEndian.AppendUint32(buf, null), true
			}
			return appendTextArray(buf, x), true
		}
	}
	return buf, false
}

// appendTimestamptz appends t as microseconds since 2000-01-01 UTC.
func appendTimestamptz(buf []byte, t time.Time) []byte {
	const unixToY2K = 946_684_800 * 1_000_000
	us := t.Unix()*1_000_000 + int64(t.Nanosecond())/1000 - unixToY2K
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(buf, 8), uint64(us)) //nolint:gosec // two's complement, as PostgreSQL reads it
}

// appendTextArray appends a one-dimensional text[] without NULLs (no
// dimension when empty, as pgtype writes it).
func appendTextArray(buf []byte, a []string) []byte {
	at := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, 0) // length, set below
	dims := uint32(0)
	if len(a) > 0 {
		dims = 1
	}
	buf = binary.BigEndian.AppendUint32(buf, dims)
	buf = binary.BigEndian.AppendUint32(buf, 0) // no NULLs
	buf = binary.BigEndian.AppendUint32(buf, pgtype.TextOID)
	if dims == 1 {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(a))) //nolint:gosec // a value is under 1 GB
		buf = binary.BigEndian.AppendUint32(buf, 1)              // lower bound
	}
	for _, s := range a {
		buf = append(binary.BigEndian.AppendUint32(buf, uint32(len(s))), s...) //nolint:gosec // a value is under 1 GB
	}
	binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-4)) //nolint:gosec // a value is under 1 GB
	return buf
}

// commitStamp is the commit time as Write writes it over prepared
// readings.
type commitStamp struct {
	at    time.Time
	boxed any    // at as a row value, boxed once
	text  []byte // meta.lastUpdated
	value []byte // last_updated as COPY encodes it
}

func (f *copyFormat) stamp(at time.Time) (commitStamp, error) {
	st := commitStamp{at: at, boxed: at}
	// Formatted aside: AppendFormat writes past what it returns.
	var buf [64]byte
	if t := at.UTC().AppendFormat(buf[:0], lastUpdatedLayout); len(t) == len(lastUpdatedLayout) {
		st.text = append([]byte(nil), t...)
	} else {
		return st, fmt.Errorf("ingest: cannot stamp %v", at) // outside years 0001–9999
	}
	sc, _ := f.scratch.Get().(*copyScratch)
	defer f.scratch.Put(sc)
	v, err := sc.m.Encode(f.oids[colLastUpdated], pgtype.BinaryFormatCode, at, nil)
	if err != nil {
		return st, fmt.Errorf("ingest: encode %v: %w", at, err)
	}
	st.value = v
	return st, nil
}

// copyTuples COPYs tuples into table on conn.
func (f *copyFormat) copyTuples(ctx context.Context, conn *pgconn.PgConn, table string, tuples [][]byte) error {
	_, err := conn.CopyFrom(ctx, &tupleReader{tuples: tuples}, f.sql[table])
	return err
}

// tupleReader reads COPY data: the header, the tuples, the trailer.
type tupleReader struct {
	tuples [][]byte
	i      int // next part: 0 header, 1…len(tuples) tuples, then trailer
	off    int // within the part
	done   bool
}

func (r *tupleReader) part() []byte {
	switch {
	case r.i == 0:
		return []byte(copyHeader)
	case r.i <= len(r.tuples):
		return r.tuples[r.i-1]
	case r.i == len(r.tuples)+1:
		return []byte(copyTrailer)
	}
	return nil
}

// Read implements io.Reader.
func (r *tupleReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && !r.done {
		part := r.part()
		if part == nil {
			r.done = true
			break
		}
		c := copy(p[n:], part[r.off:])
		n += c
		r.off += c
		if r.off == len(part) {
			r.i, r.off = r.i+1, 0
		}
	}
	if n == 0 && r.done {
		return 0, io.EOF
	}
	return n, nil
}
