package datapackage

import (
	"io"
)

// readAhead reads r on its own goroutine into a ring of buffers, so that
// decompression of the next megabytes overlaps with conversion of the
// current ones: on two cores this is what brings CSV conversion to the speed
// of decompression alone.
type readAhead struct {
	full chan chunk
	free chan []byte
	stop chan struct{}
	done chan struct{} // closed when the reading goroutine has returned
	buf  []byte        // the chunk being read; returned to free when used up
	off  int
	err  error
}

type chunk struct {
	b   []byte
	err error
}

const (
	readAheadBuf   = 512 << 10
	readAheadCount = 4
)

// newReadAhead reads r ahead; size is the expected length of r (the zip
// entry's uncompressed size), so a small entry gets small buffers.
func newReadAhead(r io.Reader, size int64) *readAhead {
	bufSize := int64(readAheadBuf)
	if size >= 0 && size/2+4096 < bufSize {
		bufSize = size/2 + 4096
	}
	ra := &readAhead{full: make(chan chunk, readAheadCount), free: make(chan []byte, readAheadCount+1), stop: make(chan struct{}), done: make(chan struct{})}
	for range readAheadCount + 1 {
		ra.free <- make([]byte, bufSize)
	}
	go func() {
		defer close(ra.done)
		defer close(ra.full)
		for {
			var buf []byte
			select {
			case buf = <-ra.free:
			case <-ra.stop:
				return
			}
			n, err := io.ReadFull(r, buf)
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			select {
			case ra.full <- chunk{b: buf[:n], err: err}:
			case <-ra.stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ra
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for ra.off >= len(ra.buf) {
		if ra.buf != nil {
			ra.free <- ra.buf[:cap(ra.buf)] // never blocks: free holds every buffer
			ra.buf = nil
		}
		if ra.err != nil {
			return 0, ra.err
		}
		c, ok := <-ra.full
		if !ok {
			return 0, io.EOF
		}
		ra.buf, ra.off, ra.err = c.b, 0, c.err
	}
	n := copy(p, ra.buf[ra.off:])
	ra.off += n
	return n, nil
}

// Close stops the reader goroutine and waits for it.
func (ra *readAhead) Close() error {
	close(ra.stop)
	<-ra.done
	return nil
}
