package verify

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// entry is what check 1 keeps of one decision-bearing record: an input's
// delivery, or a result. It is the unit of the spill files (entrySize
// bytes).
type entry struct {
	key    idKey
	off    int64
	part   int32
	reason uint16 // 1 + the reason index of the delivery's dead letter; 0: none
	topic  uint8  // index of the input topic in Topics.inputs()
	flags  uint8  // fInput, or fDecided and fResultInRange
}

const entrySize = 32

func (e *entry) encode(b *[entrySize]byte) {
	copy(b[:16], e.key[:])
	binary.LittleEndian.PutUint64(b[16:], uint64(e.off))
	binary.LittleEndian.PutUint32(b[24:], uint32(e.part))
	binary.LittleEndian.PutUint16(b[28:], e.reason)
	b[30], b[31] = e.topic, e.flags
}

func (e *entry) decode(b *[entrySize]byte) {
	copy(e.key[:], b[:16])
	e.off = int64(binary.LittleEndian.Uint64(b[16:]))
	e.part = int32(binary.LittleEndian.Uint32(b[24:]))
	e.reason = binary.LittleEndian.Uint16(b[28:])
	e.topic, e.flags = b[30], b[31]
}

// spill partitions entries by group into temporary files, so that the
// topics are read once however many groups memory allows at a time.
type spill struct {
	dir   string
	files []*os.File
	bufs  []*bufio.Writer
	n     []int64
}

// newSpill creates one file per group in a new directory under dir
// (os.TempDir() when empty).
func newSpill(dir string, groups int) (*spill, error) {
	d, err := os.MkdirTemp(dir, "promoflow-verify-")
	if err != nil {
		return nil, fmt.Errorf("creating the spill directory: %w", err)
	}
	s := &spill{dir: d, n: make([]int64, groups)}
	for g := range groups {
		f, err := os.Create(fmt.Sprintf("%s/group-%03d", d, g))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("creating a spill file: %w", err)
		}
		s.files = append(s.files, f)
		s.bufs = append(s.bufs, bufio.NewWriterSize(f, 64<<10))
	}
	return s, nil
}

func (s *spill) add(g int, e *entry) error {
	var b [entrySize]byte
	e.encode(&b)
	s.n[g]++
	if _, err := s.bufs[g].Write(b[:]); err != nil {
		return fmt.Errorf("writing a spill file: %w", err)
	}
	return nil
}

// each calls fn with every entry of group g, in the order added.
func (s *spill) each(g int, fn func(*entry)) error {
	if err := s.bufs[g].Flush(); err != nil {
		return fmt.Errorf("writing a spill file: %w", err)
	}
	f := s.files[g]
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading a spill file: %w", err)
	}
	r := bufio.NewReaderSize(f, 64<<10)
	var b [entrySize]byte
	var e entry
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading a spill file: %w", err)
		}
		e.decode(&b)
		fn(&e)
	}
}

// close removes the files.
func (s *spill) close() {
	for _, f := range s.files {
		_ = f.Close()
	}
	_ = os.RemoveAll(s.dir)
}
