package archive

import (
	"archive/zip"
	"debug/elf"
	"debug/macho"
	"encoding/binary"
	"fmt"
	"io"
)

// elfArch is what an ELF header says about the platform it was built for.
type elfArch struct {
	class   elf.Class
	data    elf.Data
	machine elf.Machine
}

// elfArches covers every GOARCH Go supports on linux.
var elfArches = map[string]elfArch{
	"386":      {elf.ELFCLASS32, elf.ELFDATA2LSB, elf.EM_386},
	"amd64":    {elf.ELFCLASS64, elf.ELFDATA2LSB, elf.EM_X86_64},
	"arm":      {elf.ELFCLASS32, elf.ELFDATA2LSB, elf.EM_ARM},
	"arm64":    {elf.ELFCLASS64, elf.ELFDATA2LSB, elf.EM_AARCH64},
	"loong64":  {elf.ELFCLASS64, elf.ELFDATA2LSB, elf.EM_LOONGARCH},
	"mips":     {elf.ELFCLASS32, elf.ELFDATA2MSB, elf.EM_MIPS},
	"mipsle":   {elf.ELFCLASS32, elf.ELFDATA2LSB, elf.EM_MIPS},
	"mips64":   {elf.ELFCLASS64, elf.ELFDATA2MSB, elf.EM_MIPS},
	"mips64le": {elf.ELFCLASS64, elf.ELFDATA2LSB, elf.EM_MIPS},
	"ppc64":    {elf.ELFCLASS64, elf.ELFDATA2MSB, elf.EM_PPC64},
	"ppc64le":  {elf.ELFCLASS64, elf.ELFDATA2LSB, elf.EM_PPC64},
	"riscv64":  {elf.ELFCLASS64, elf.ELFDATA2LSB, elf.EM_RISCV},
	"s390x":    {elf.ELFCLASS64, elf.ELFDATA2MSB, elf.EM_S390},
}

// machoCPUs covers every GOARCH Go supports on darwin.
var machoCPUs = map[string]macho.Cpu{
	"amd64": macho.CpuAmd64,
	"arm64": macho.CpuArm64,
}

// checkExecutable refuses an executable that its header shows is not built
// for goos/goarch: ELF on linux, 64-bit Mach-O on darwin. On other systems
// it only requires the file to be non-empty. Only the header is read, so a
// truncated or damaged body is left for the system to refuse at start.
func checkExecutable(zf *zip.File, goos, goarch string) error {
	rc, err := open(zf)
	if err != nil {
		return err
	}
	defer rc.Close()
	head := make([]byte, 64)
	n, err := io.ReadFull(rc, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return corrupt(zf.Name, err)
	}
	head = head[:n]
	var problem string
	switch {
	case goos == "linux":
		problem = elfProblem(head, goarch)
	case goos == "darwin":
		problem = machoProblem(head, goarch)
	case n == 0:
		problem = "it is empty"
	}
	if problem != "" {
		return invalid("Executable %s is not a %s/%s executable: %s.", quote(zf.Name), goos, goarch, problem)
	}
	return nil
}

func elfProblem(head []byte, goarch string) string {
	want, ok := elfArches[goarch]
	if !ok {
		return "architecture not supported"
	}
	if len(head) < 20 || string(head[:4]) != elf.ELFMAG {
		return "it is not an ELF file"
	}
	got := elfArch{elf.Class(head[elf.EI_CLASS]), elf.Data(head[elf.EI_DATA]), 0}
	var order binary.ByteOrder = binary.LittleEndian
	if got.data == elf.ELFDATA2MSB {
		order = binary.BigEndian
	}
	// e_type and e_machine follow the 16-byte ident in both ELF classes.
	typ := elf.Type(order.Uint16(head[16:]))
	got.machine = elf.Machine(order.Uint16(head[18:]))
	switch {
	case typ != elf.ET_EXEC && typ != elf.ET_DYN:
		return fmt.Sprintf("its ELF type is %v", typ)
	case got != want:
		return fmt.Sprintf("it is built for %v (%v, %v)", got.machine, got.class, got.data)
	}
	return ""
}

func machoProblem(head []byte, goarch string) string {
	want, ok := machoCPUs[goarch]
	if !ok {
		return "architecture not supported"
	}
	// Go builds thin 64-bit little-endian Mach-O files for darwin.
	if len(head) < 16 || binary.LittleEndian.Uint32(head) != macho.Magic64 {
		return "it is not a 64-bit Mach-O file"
	}
	cpu := macho.Cpu(binary.LittleEndian.Uint32(head[4:]))
	typ := macho.Type(binary.LittleEndian.Uint32(head[12:]))
	switch {
	case typ != macho.TypeExec:
		return fmt.Sprintf("its Mach-O type is %v", typ)
	case cpu != want:
		return fmt.Sprintf("it is built for %v", cpu)
	}
	return ""
}
