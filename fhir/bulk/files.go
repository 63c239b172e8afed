package bulk

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"

	"github.com/vidda/vidda/fhir/store"
)

// fileSet writes one run's ndjson files into the job's directory:
// <Type>-<attempt>-<n>.ndjson, a new file every maxLines resources. The
// attempt in the name keeps a run from touching the files of an earlier
// run of the same job that may still be finishing elsewhere.
type fileSet struct {
	dir      string
	attempt  int
	maxLines int64
	created  []string // every file this run created, to remove on failure
	done     []store.ExportFile

	// the file being written
	typ     string
	f       *os.File
	out     writeback
	w       *bufio.Writer
	lines   int64
	seq     int
	compact bytes.Buffer

	syncs   sync.WaitGroup // files being synced and closed
	mu      sync.Mutex
	syncErr error
}

// writeBuffer is the size of the buffered writer in front of each file:
// big enough that a write call moves a few hundred resources.
const writeBuffer = 256 << 10

func newFileSet(dir string, attempt int, maxLines int64) (*fileSet, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("export files: %w", err)
	}
	return &fileSet{dir: dir, attempt: attempt, maxLines: maxLines}, nil
}

// start begins the files of typ; a type with no resources has none.
func (fs *fileSet) start(typ string) {
	fs.typ, fs.seq = typ, 0
}

// line writes one resource as one line and returns the bytes it wrote.
// Stored content is compact JSON (fhir.WithMeta writes it so), which has
// no raw newline; a resource that somehow does is compacted here rather
// than split over two lines.
func (fs *fileSet) line(content []byte) (int, error) {
	if fs.f == nil {
		if err := fs.open(); err != nil {
			return 0, err
		}
	}
	if bytes.IndexByte(content, '\n') >= 0 || bytes.IndexByte(content, '\r') >= 0 {
		fs.compact.Reset()
		if err := json.Compact(&fs.compact, content); err != nil {
			return 0, fmt.Errorf("export %s: stored content is not JSON: %w", fs.typ, err)
		}
		content = fs.compact.Bytes()
	}
	if _, err := fs.w.Write(content); err != nil {
		return 0, fmt.Errorf("export files: %w", err)
	}
	if err := fs.w.WriteByte('\n'); err != nil {
		return 0, fmt.Errorf("export files: %w", err)
	}
	fs.lines++
	if fs.lines >= fs.maxLines {
		return len(content) + 1, fs.closeFile()
	}
	return len(content) + 1, nil
}

func (fs *fileSet) open() error {
	fs.seq++
	name := fs.typ + "-" + strconv.Itoa(fs.attempt) + "-" + strconv.Itoa(fs.seq) + ".ndjson"
	f, err := os.OpenFile(filepath.Join(fs.dir, name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600) //nolint:gosec // name is built from a served type and numbers
	if err != nil {
		return fmt.Errorf("export files: %w", err)
	}
	fs.created = append(fs.created, name)
	fs.f, fs.lines = f, 0
	fs.out = writeback{f: f}
	if fs.w == nil {
		fs.w = bufio.NewWriterSize(&fs.out, writeBuffer)
	} else {
		fs.w.Reset(&fs.out)
	}
	return nil
}

// writebackEvery is how much a file grows before its new pages are sent
// to disk: an fsync of a whole 60 MB file at its close measured as long as
// writing it, and with the writes under way the close waits for the last
// few MB only.
const writebackEvery = 8 << 20

// writeback writes to a file and starts writing it to disk behind itself.
type writeback struct {
	f           *os.File
	off, queued int64
}

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.queued >= writebackEvery {
		startWriteback(w.f, w.queued, w.off-w.queued)
		w.queued = w.off
	}
	return n, err
}

// closeFile records the current file and leaves it to be synced and
// closed in the background, while the next one is written: waiting for
// the disk here would stall the database stream. wait collects them.
func (fs *fileSet) closeFile() error {
	if fs.f == nil {
		return nil
	}
	f := fs.f
	fs.f = nil
	if err := fs.w.Flush(); err != nil {
		_ = f.Close()
		return fmt.Errorf("export files: %w", err)
	}
	fs.done = append(fs.done, store.ExportFile{Type: fs.typ, Name: fs.created[len(fs.created)-1], Count: fs.lines})
	fs.syncs.Go(func() {
		err := f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			fs.mu.Lock()
			fs.syncErr = errors.Join(fs.syncErr, err)
			fs.mu.Unlock()
		}
	})
	return fs.failed()
}

// failed is the first error of a background sync, if any.
func (fs *fileSet) failed() error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.syncErr != nil {
		return fmt.Errorf("export files: %w", fs.syncErr)
	}
	return nil
}

// finish closes the type's last file.
func (fs *fileSet) finish() error { return fs.closeFile() }

// wait returns once every file, and the directory naming them, is on
// disk: a manifest must not name a file a crash can take back.
func (fs *fileSet) wait() error {
	fs.syncs.Wait()
	if err := fs.failed(); err != nil {
		return err
	}
	d, err := os.Open(fs.dir)
	if err != nil {
		return fmt.Errorf("export files: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("export files: %w", err)
	}
	return nil
}

// remove deletes every file this run created, and the directory if that
// leaves it empty.
func (fs *fileSet) remove() error {
	fs.syncs.Wait()
	var errs []error
	if fs.f != nil {
		errs = append(errs, fs.f.Close())
		fs.f = nil
	}
	for _, name := range fs.created {
		if err := os.Remove(filepath.Join(fs.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	_ = os.Remove(fs.dir) // only if empty; another run's files stay
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("export files: %w", err)
	}
	return nil
}

// jobIDPattern is what a job id (a UUID) looks like: the sweeper removes
// nothing else from the export directory, whatever else is in it.
var jobIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`) //nolint:gochecknoglobals // a compiled constant

// fileNamePattern is what a file name in a manifest looks like.
var fileNamePattern = regexp.MustCompile(`^[A-Z][A-Za-z]{0,63}-[0-9]{1,9}-[0-9]{1,9}\.ndjson$`) //nolint:gochecknoglobals // a compiled constant
