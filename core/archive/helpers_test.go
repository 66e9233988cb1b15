package archive

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"debug/elf"
	"debug/macho"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"io/fs"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// zentry describes one entry of a zip built by buildZip.
type zentry struct {
	name   string
	body   []byte
	mode   fs.FileMode // when zero, the zip's default
	method uint16      // zip.Store unless set
	flags  uint16
	// raw, when set, writes body as the already compressed data and
	// declares size as the uncompressed size, so headers can lie.
	raw  bool
	size uint64
	crc  uint32
}

// buildZip writes entries, in order, into an in-memory zip.
func buildZip(t testing.TB, entries ...zentry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		hdr := &zip.FileHeader{Name: e.name, Method: e.method, Flags: e.flags}
		if e.mode != 0 {
			hdr.SetMode(e.mode)
		}
		if e.raw {
			hdr.CompressedSize64 = uint64(len(e.body))
			hdr.UncompressedSize64 = e.size
			hdr.CRC32 = e.crc
			w, err := zw.CreateRaw(hdr)
			require.NoError(t, err)
			_, err = w.Write(e.body)
			require.NoError(t, err)
			continue
		}
		w, err := zw.CreateHeader(hdr)
		require.NoError(t, err)
		_, err = w.Write(e.body)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// deflate returns data as a raw deflate stream.
func deflate(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.DefaultCompression)
	require.NoError(t, err)
	_, err = fw.Write(data)
	require.NoError(t, err)
	require.NoError(t, fw.Close())
	return buf.Bytes()
}

// testExe is the running test binary: a real executable for this platform.
var testExe = sync.OnceValues(func() ([]byte, error) {
	path, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return os.ReadFile(path)
})

func realExe(t testing.TB) []byte {
	t.Helper()
	exe, err := testExe()
	require.NoError(t, err)
	return exe
}

// fakeELF returns a 64-byte little-endian ELF64 header for machine.
func fakeELF(typ elf.Type, machine elf.Machine) []byte {
	h := make([]byte, 64)
	copy(h, elf.ELFMAG)
	h[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.LittleEndian.PutUint16(h[16:], uint16(typ))
	binary.LittleEndian.PutUint16(h[18:], uint16(machine))
	return h
}

// fakeMachO returns a 32-byte 64-bit Mach-O header for cpu.
func fakeMachO(typ macho.Type, cpu macho.Cpu) []byte {
	h := make([]byte, 32)
	binary.LittleEndian.PutUint32(h, macho.Magic64)
	binary.LittleEndian.PutUint32(h[4:], uint32(cpu))
	binary.LittleEndian.PutUint32(h[12:], uint32(typ))
	return h
}

const testManifest = `{"name": "hello", "version": "1.0.0"}`

// baseEntries are the two entries every valid archive for linux/amd64 needs.
func baseEntries(exe []byte) []zentry {
	return []zentry{
		{name: "module_meta.json", body: []byte(testManifest)},
		{name: "bin/linux-amd64/hello", body: exe, mode: 0o755},
	}
}

func readZip(data []byte, lim Limits, goos, goarch string) (*Archive, error) {
	return Read(bytes.NewReader(data), int64(len(data)), lim, goos, goarch)
}

func sha(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func crc(data []byte) uint32 { return crc32.ChecksumIEEE(data) }
