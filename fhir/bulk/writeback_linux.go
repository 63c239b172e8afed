package bulk

import (
	"os"
	"syscall"
)

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE (linux/fs.h): start writing
// the range's dirty pages out, without waiting.
const syncFileRangeWrite = 0x2

// startWriteback asks the kernel to start writing n bytes of f at off to
// disk now, so that the fsync closing the file finds little left to do.
// It is a hint: errors are for the fsync to report.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SyncFileRange(int(fd), off, n, syncFileRangeWrite) //nolint:gosec // a file descriptor fits an int
	})
}
