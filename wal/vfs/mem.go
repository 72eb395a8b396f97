package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// Op names one filesystem operation, for fault injection and for the OnOp
// hook of Mem.
type Op uint8

// The operations Mem reports. OpAny matches every operation in a Fault.
const (
	OpAny Op = iota
	OpCreate
	OpOpen
	OpOpenRW
	OpRead
	OpWrite
	OpSeek
	OpSync
	OpTruncate
	OpSize
	OpClose
	OpRename
	OpRemove
	OpMkdirAll
	OpList
	OpStat
	OpSyncDir
)

var opNames = [...]string{
	OpAny: "any", OpCreate: "create", OpOpen: "open", OpOpenRW: "openrw",
	OpRead: "read", OpWrite: "write", OpSeek: "seek", OpSync: "sync",
	OpTruncate: "truncate", OpSize: "size", OpClose: "close",
	OpRename: "rename", OpRemove: "remove", OpMkdirAll: "mkdirall",
	OpList: "list", OpStat: "stat", OpSyncDir: "syncdir",
}

// String returns the operation's lower-case name.
func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Fault makes matching operations of a Mem fail. An operation matches when
// Op is OpAny or equal to it and Path is empty or a substring of its path
// (for a rename: of either path).
type Fault struct {
	Op   Op
	Path string
	// After lets this many matching operations pass before the fault fires.
	After int
	// Times is how many matching operations fail; 0 means every later one.
	Times int
	// Err is the cause; the default is syscall.EIO. The operation returns
	// an *os.PathError wrapping it, so errors.Is(err, Err) holds.
	Err error
	// Prefix, for OpWrite only, is how many bytes are written before the
	// error is returned: a short write.
	Prefix int
}

type faultState struct {
	Fault
	seen, fired int
}

// Mem is a strict in-memory FS for tests. For every file it keeps the
// current bytes and the bytes as of the last Sync; for every directory the
// current entries and the entries as of the last SyncDir. Crash returns
// the state a crash would leave: only what was made durable.
//
// Mem is safe for concurrent use. Open handles keep working after a
// rename or remove of their name, as on POSIX. Directories made by
// MkdirAll are, like files, durable only after SyncDir of their parent.
type Mem struct {
	ops atomic.Int64
	// onOp is the hook run before each operation; see SetOnOp.
	onOp atomic.Pointer[func(op Op, path string) error]

	// mu guards root, every node below it, every handle's fields and
	// faults.
	mu     sync.Mutex
	root   *memDir
	faults []*faultState
}

type memNode interface{ isNode() }

type memDir struct {
	cur    map[string]memNode
	synced map[string]memNode
}

type memFile struct {
	data []byte
	// synced is the content as of the last Sync. It may share its backing
	// array with data (shared == true); a write below len(synced) copies
	// data first, so synced never changes under it.
	synced []byte
	shared bool
}

func (*memDir) isNode()  {}
func (*memFile) isNode() {}

func newMemDir() *memDir {
	return &memDir{cur: map[string]memNode{}, synced: map[string]memNode{}}
}

// NewMem returns an empty Mem holding only the root directory.
func NewMem() *Mem { return &Mem{root: newMemDir()} }

// SetOnOp installs a hook run before every operation, outside Mem's lock,
// with the operation and its path (for a rename, the old path). It may
// block, for example on a channel, to hold a caller mid-operation, and it
// may call Crash. A non-nil error fails the operation with that cause.
// nil removes the hook.
func (m *Mem) SetOnOp(fn func(op Op, path string) error) {
	if fn == nil {
		m.onOp.Store(nil)
		return
	}
	m.onOp.Store(&fn)
}

// Ops returns how many operations have been started on m.
func (m *Mem) Ops() int64 { return m.ops.Load() }

// Inject adds a fault. Faults are checked in the order they were added;
// the first that fires decides.
func (m *Mem) Inject(f Fault) {
	if f.Err == nil {
		f.Err = syscall.EIO
	}
	m.mu.Lock()
	m.faults = append(m.faults, &faultState{Fault: f})
	m.mu.Unlock()
}

// ClearFaults removes every fault.
func (m *Mem) ClearFaults() {
	m.mu.Lock()
	m.faults = nil
	m.mu.Unlock()
}

// Crash returns a new Mem holding only what was durable in m: files with
// their last synced bytes, reachable through directory entries as of their
// last SyncDir. Hooks and faults are not copied; m is left as it is.
func (m *Mem) Crash() *Mem {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &Mem{root: crashDir(m.root)}
}

func crashDir(d *memDir) *memDir {
	nd := newMemDir()
	for name, n := range d.synced {
		var c memNode
		switch n := n.(type) {
		case *memDir:
			c = crashDir(n)
		case *memFile:
			data := append([]byte(nil), n.synced...)
			c = &memFile{data: data, synced: data[:len(data):len(data)], shared: true}
		}
		nd.cur[name] = c
		nd.synced[name] = c
	}
	return nd
}

// ReadFile returns a file's current content, for tests. It runs no hook
// and no fault.
func (m *Mem) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, err := m.lookupFile(name)
	if err != nil {
		return nil, &os.PathError{Op: "readfile", Path: name, Err: err}
	}
	return append([]byte(nil), f.data...), nil
}

// WriteFile sets a file's content and makes it durable with its directory
// entry (and every other pending entry of that directory), for tests. The
// parent directory must exist. It runs no hook and no fault.
func (m *Mem) WriteFile(name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.parent(name)
	if err != nil {
		return &os.PathError{Op: "writefile", Path: name, Err: err}
	}
	b := append([]byte(nil), data...)
	d.cur[base] = &memFile{data: b, synced: b[:len(b):len(b)], shared: true}
	d.synced = cloneEntries(d.cur)
	return nil
}

func cloneEntries(e map[string]memNode) map[string]memNode {
	c := make(map[string]memNode, len(e))
	for k, v := range e {
		c[k] = v
	}
	return c
}

func splitPath(name string) []string {
	p := strings.Trim(path.Clean("/"+name), "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// dirLocked walks to the directory holding the given components.
func (m *Mem) dirLocked(parts []string) (*memDir, error) {
	d := m.root
	for _, p := range parts {
		n, ok := d.cur[p]
		if !ok {
			return nil, os.ErrNotExist
		}
		sub, ok := n.(*memDir)
		if !ok {
			return nil, syscall.ENOTDIR
		}
		d = sub
	}
	return d, nil
}

// parent returns the directory holding name and name's last component.
func (m *Mem) parent(name string) (*memDir, string, error) {
	parts := splitPath(name)
	if len(parts) == 0 {
		return nil, "", syscall.EISDIR
	}
	d, err := m.dirLocked(parts[:len(parts)-1])
	return d, parts[len(parts)-1], err
}

func (m *Mem) lookupFile(name string) (*memFile, error) {
	d, base, err := m.parent(name)
	if err != nil {
		return nil, err
	}
	n, ok := d.cur[base]
	if !ok {
		return nil, os.ErrNotExist
	}
	f, ok := n.(*memFile)
	if !ok {
		return nil, syscall.EISDIR
	}
	return f, nil
}

// before runs the hook and the faults for one operation. It returns the
// fault that fired (nil if none) or the hook's error.
func (m *Mem) before(op Op, paths ...string) (*Fault, error) {
	m.ops.Add(1)
	if fn := m.onOp.Load(); fn != nil {
		if err := (*fn)(op, paths[0]); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range m.faults {
		if !f.matches(op, paths) {
			continue
		}
		f.seen++
		if f.seen <= f.After || (f.Times > 0 && f.fired >= f.Times) {
			continue
		}
		f.fired++
		fault := f.Fault
		return &fault, nil
	}
	return nil, nil
}

func (f *faultState) matches(op Op, paths []string) bool {
	if f.Op != OpAny && f.Op != op {
		return false
	}
	if f.Path == "" {
		return true
	}
	for _, p := range paths {
		if strings.Contains(p, f.Path) {
			return true
		}
	}
	return false
}

// check is before for operations that have no partial effect.
func (m *Mem) check(op Op, paths ...string) error {
	f, err := m.before(op, paths...)
	if err != nil {
		return &os.PathError{Op: op.String(), Path: paths[0], Err: err}
	}
	if f != nil {
		return &os.PathError{Op: op.String(), Path: paths[0], Err: f.Err}
	}
	return nil
}

// Create implements FS.
func (m *Mem) Create(name string) (File, error) {
	if err := m.check(OpCreate, name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.parent(name)
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: name, Err: err}
	}
	if n, ok := d.cur[base]; ok {
		f, ok := n.(*memFile)
		if !ok {
			return nil, &os.PathError{Op: "create", Path: name, Err: syscall.EISDIR}
		}
		// O_TRUNC: the same inode, emptied; durable after Sync.
		f.data = nil
		f.shared = false
		return &memHandle{m: m, f: f, name: name}, nil
	}
	f := &memFile{}
	d.cur[base] = f
	return &memHandle{m: m, f: f, name: name}, nil
}

func (m *Mem) open(op Op, name string, readOnly bool) (File, error) {
	if err := m.check(op, name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f, err := m.lookupFile(name)
	if err != nil {
		return nil, &os.PathError{Op: op.String(), Path: name, Err: err}
	}
	return &memHandle{m: m, f: f, name: name, readOnly: readOnly}, nil
}

// Open implements FS.
func (m *Mem) Open(name string) (File, error) { return m.open(OpOpen, name, true) }

// OpenRW implements FS.
func (m *Mem) OpenRW(name string) (File, error) { return m.open(OpOpenRW, name, false) }

// Rename implements FS. It is durable once SyncDir of both parents
// returned nil.
func (m *Mem) Rename(oldname, newname string) error {
	if err := m.check(OpRename, oldname, newname); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	od, obase, err := m.parent(oldname)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	n, ok := od.cur[obase]
	if !ok {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: os.ErrNotExist}
	}
	nd, nbase, err := m.parent(newname)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	if t, ok := nd.cur[nbase]; ok {
		if _, isDir := t.(*memDir); isDir {
			return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: syscall.EISDIR}
		}
	}
	delete(od.cur, obase)
	nd.cur[nbase] = n
	return nil
}

// Remove implements FS.
func (m *Mem) Remove(name string) error {
	if err := m.check(OpRemove, name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.parent(name)
	if err != nil {
		return &os.PathError{Op: "remove", Path: name, Err: err}
	}
	n, ok := d.cur[base]
	if !ok {
		return &os.PathError{Op: "remove", Path: name, Err: os.ErrNotExist}
	}
	if sub, ok := n.(*memDir); ok && len(sub.cur) > 0 {
		return &os.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	delete(d.cur, base)
	return nil
}

// MkdirAll implements FS.
func (m *Mem) MkdirAll(dir string, _ os.FileMode) error {
	if err := m.check(OpMkdirAll, dir); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.root
	for _, p := range splitPath(dir) {
		n, ok := d.cur[p]
		if !ok {
			sub := newMemDir()
			d.cur[p] = sub
			d = sub
			continue
		}
		sub, ok := n.(*memDir)
		if !ok {
			return &os.PathError{Op: "mkdirall", Path: dir, Err: syscall.ENOTDIR}
		}
		d = sub
	}
	return nil
}

// List implements FS.
func (m *Mem) List(dir string) ([]string, error) {
	if err := m.check(OpList, dir); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, err := m.dirLocked(splitPath(dir))
	if err != nil {
		return nil, &os.PathError{Op: "list", Path: dir, Err: err}
	}
	names := make([]string, 0, len(d.cur))
	for name := range d.cur {
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

// Stat implements FS.
func (m *Mem) Stat(name string) (int64, error) {
	if err := m.check(OpStat, name); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f, err := m.lookupFile(name)
	if err != nil {
		return 0, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	return int64(len(f.data)), nil
}

// SyncDir implements FS: the directory's current entries become durable.
func (m *Mem) SyncDir(dir string) error {
	if err := m.check(OpSyncDir, dir); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, err := m.dirLocked(splitPath(dir))
	if err != nil {
		return &os.PathError{Op: "syncdir", Path: dir, Err: err}
	}
	d.synced = cloneEntries(d.cur)
	return nil
}

// memHandle is an open file of a Mem. Its fields are guarded by m.mu.
type memHandle struct {
	m        *Mem
	f        *memFile
	name     string
	pos      int64
	readOnly bool
	closed   bool
}

var errClosed = errors.New("file already closed")

func (h *memHandle) pathErr(op Op, err error) error {
	return &os.PathError{Op: op.String(), Path: h.name, Err: err}
}

// Name implements File.
func (h *memHandle) Name() string { return h.name }

// Read implements File.
func (h *memHandle) Read(p []byte) (int, error) {
	if err := h.m.check(OpRead, h.name); err != nil {
		return 0, err
	}
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.closed {
		return 0, h.pathErr(OpRead, errClosed)
	}
	n, err := h.readAtLocked(p, h.pos)
	h.pos += int64(n)
	return n, err
}

// ReadAt implements File.
func (h *memHandle) ReadAt(p []byte, off int64) (int, error) {
	if err := h.m.check(OpRead, h.name); err != nil {
		return 0, err
	}
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.closed {
		return 0, h.pathErr(OpRead, errClosed)
	}
	if off < 0 {
		return 0, h.pathErr(OpRead, syscall.EINVAL)
	}
	n, err := h.readAtLocked(p, off)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

func (h *memHandle) readAtLocked(p []byte, off int64) (int, error) {
	if off >= int64(len(h.f.data)) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	return copy(p, h.f.data[off:]), nil
}

// Write implements File. A Fault with a Prefix writes that many bytes
// before it fails.
func (h *memHandle) Write(p []byte) (int, error) {
	return h.write(p, -1)
}

// WriteAt implements File. It counts as OpWrite for faults and the hook.
func (h *memHandle) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, h.pathErr(OpWrite, syscall.EINVAL)
	}
	return h.write(p, off)
}

// write writes at off, or at the handle's position if off is -1.
func (h *memHandle) write(p []byte, off int64) (int, error) {
	fault, err := h.m.before(OpWrite, h.name)
	if err != nil {
		return 0, h.pathErr(OpWrite, err)
	}
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.closed {
		return 0, h.pathErr(OpWrite, errClosed)
	}
	if h.readOnly {
		return 0, h.pathErr(OpWrite, syscall.EBADF)
	}
	pos := off
	if off < 0 {
		pos = h.pos
	}
	n := len(p)
	if fault != nil {
		n = min(max(fault.Prefix, 0), len(p))
		err = h.pathErr(OpWrite, fault.Err)
	}
	end := h.f.writeAtLocked(p[:n], pos)
	if off < 0 {
		h.pos = end
	}
	return n, err
}

// writeAtLocked writes p at pos and returns the offset after it.
func (f *memFile) writeAtLocked(p []byte, pos int64) int64 {
	if len(p) == 0 {
		return pos
	}
	// NB: zero-filling a hole also writes below the end, so the copy is
	// needed whenever the lower of pos and the current size lies inside
	// the synced bytes.
	if f.shared && min(pos, int64(len(f.data))) < int64(len(f.synced)) {
		f.data = append([]byte(nil), f.data...)
		f.shared = false
	}
	end := pos + int64(len(p))
	if end > int64(len(f.data)) {
		if end > int64(cap(f.data)) {
			grown := make([]byte, end, max(end, 2*int64(cap(f.data))))
			copy(grown, f.data)
			f.data = grown
			f.shared = false
		} else {
			old := len(f.data)
			f.data = f.data[:end]
			clear(f.data[old:])
		}
	}
	copy(f.data[pos:], p)
	return end
}

// Seek implements File.
func (h *memHandle) Seek(offset int64, whence int) (int64, error) {
	if err := h.m.check(OpSeek, h.name); err != nil {
		return 0, err
	}
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.closed {
		return 0, h.pathErr(OpSeek, errClosed)
	}
	var pos int64
	switch whence {
	case io.SeekStart:
		pos = offset
	case io.SeekCurrent:
		pos = h.pos + offset
	case io.SeekEnd:
		pos = int64(len(h.f.data)) + offset
	default:
		return 0, h.pathErr(OpSeek, syscall.EINVAL)
	}
	if pos < 0 {
		return 0, h.pathErr(OpSeek, syscall.EINVAL)
	}
	h.pos = pos
	return pos, nil
}

// Sync implements File: the current content becomes durable.
func (h *memHandle) Sync() error {
	if err := h.m.check(OpSync, h.name); err != nil {
		return err
	}
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.closed {
		return h.pathErr(OpSync, errClosed)
	}
	h.f.synced = h.f.data[:len(h.f.data):len(h.f.data)]
	h.f.shared = true
	return nil
}

// Truncate implements File.
func (h *memHandle) Truncate(size int64) error {
	if err := h.m.check(OpTruncate, h.name); err != nil {
		return err
	}
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.closed {
		return h.pathErr(OpTruncate, errClosed)
	}
	if h.readOnly {
		return h.pathErr(OpTruncate, syscall.EBADF)
	}
	if size < 0 {
		return h.pathErr(OpTruncate, syscall.EINVAL)
	}
	f := h.f
	if size <= int64(len(f.data)) {
		f.data = f.data[:size]
		return nil
	}
	grown := make([]byte, size)
	copy(grown, f.data)
	f.data = grown
	f.shared = false
	return nil
}

// Size implements File.
func (h *memHandle) Size() (int64, error) {
	if err := h.m.check(OpSize, h.name); err != nil {
		return 0, err
	}
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.closed {
		return 0, h.pathErr(OpSize, errClosed)
	}
	return int64(len(h.f.data)), nil
}

// Close implements File.
func (h *memHandle) Close() error {
	if err := h.m.check(OpClose, h.name); err != nil {
		return err
	}
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.closed {
		return h.pathErr(OpClose, errClosed)
	}
	h.closed = true
	return nil
}
