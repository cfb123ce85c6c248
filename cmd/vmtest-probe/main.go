// Command vmtest-probe is the harness's tiny, static guest helper. The harness builds it for
// the guest's architecture and copies it in, so a guest needs no extra packages to serve or
// probe TCP or to read ELF files; on the host it bridges QEMU guestfwd connections to a test's
// listener.
//
//	vmtest-probe listen PORT TOKEN [SECONDS]  serve TOKEN to every connection on PORT
//	vmtest-probe connect HOST:PORT [SECONDS]  print the first line the server sends (exit 1 if none)
//	vmtest-probe bridge HOST:PORT             copy stdin/stdout to a TCP connection
//	vmtest-probe elf-hardening DIR...         JSON: each ELF hardening property's share under DIRs
//	vmtest-probe abi SONAME...                "[soname]", then "symbol@VERSION" for each export
//	vmtest-probe tpm-random N                 N random bytes from the TPM (TPM2_GetRandom), in hex
//	vmtest-probe tpm-pcr-extend PCR DIGEST    extend PCR with a SHA-256 DIGEST in hex (TPM2_PCR_Extend)
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/elfscan"
)

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	switch os.Args[1] {
	case "listen":
		if len(os.Args) < 4 {
			usage()
		}
		listen(os.Args[2], os.Args[3], seconds(4, 600))
	case "connect":
		os.Exit(connect(os.Args[2], seconds(3, 5)))
	case "bridge":
		bridge(os.Args[2])
	case "elf-hardening":
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(elfscan.Scan(os.Args[2:]...))
	case "abi":
		os.Exit(abi(os.Args[2:]))
	case "tpm-random":
		n, err := strconv.Atoi(os.Args[2])
		if err != nil || n < 1 || n > 64 {
			usage()
		}
		os.Exit(tpmRandom(n))
	case "tpm-pcr-extend":
		pcr, err := strconv.Atoi(os.Args[2])
		if len(os.Args) != 4 || err != nil || pcr < 0 || pcr > 23 {
			usage()
		}
		os.Exit(tpmPCRExtend(pcr, os.Args[3]))
	default:
		usage()
	}
}

func seconds(i, def int) time.Duration {
	if len(os.Args) > i {
		if n, err := strconv.Atoi(os.Args[i]); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return time.Duration(def) * time.Second
}

func listen(port, token string, life time.Duration) {
	l, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest-probe:", err)
		os.Exit(1)
	}
	time.AfterFunc(life, func() { os.Exit(0) })
	fmt.Println("listening", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintln(c, token)
		}()
	}
}

func connect(addr string, timeout time.Duration) int {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest-probe:", err)
		return 1
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(os.Stderr, "vmtest-probe: connected but no data:", err)
		return 1
	}
	fmt.Print(line)
	return 0
}

func bridge(addr string) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest-probe:", err)
		os.Exit(1)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(os.Stdout, c)
	}()
	_, _ = io.Copy(c, os.Stdin)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	wg.Wait()
}

// abi prints, for each library, a "[soname]" line and then its exported symbols, one
// "symbol@VERSION" a line; a library that is missing or unreadable is reported on stderr and
// makes the exit code 1, and so does output that could not be written (a listing cut short
// must not read as a library that lost its symbols).
func abi(sonames []string) int {
	rc := 0
	w := bufio.NewWriter(os.Stdout)
	for _, so := range sonames {
		path, err := elfscan.FindLibrary(so)
		var syms []string
		if err == nil {
			syms, err = elfscan.Exports(path)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "vmtest-probe:", err)
			rc = 1
			continue
		}
		fmt.Fprintf(w, "[%s]\n", so)
		for _, s := range syms {
			fmt.Fprintln(w, s)
		}
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "vmtest-probe: writing the symbols:", err)
		rc = 1
	}
	return rc
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: vmtest-probe listen PORT TOKEN [SECONDS] | connect HOST:PORT [SECONDS] | bridge HOST:PORT | elf-hardening DIR... | abi SONAME... | tpm-random N | tpm-pcr-extend PCR DIGEST")
	os.Exit(2)
}
