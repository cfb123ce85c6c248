package ssh

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// RunAll runs several read-only probes in one session (one round trip instead of one each),
// keeping each probe's stdout, stderr and exit code apart: a probe that fails or exits does
// not stop or hide the others. Each probe runs in its own subshell with stdin closed. The
// error is only for an unknown outcome of the whole batch.
func (c *Client) RunAll(ctx context.Context, prefix string, cmds []string) ([]Result, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	tok := make([]byte, 8)
	_, _ = rand.Read(tok)
	token := "azl-vmtest-" + hex.EncodeToString(tok)
	res, err := c.Run(ctx, BatchScript(prefix, cmds, token), nil)
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("probe batch exited %d: %s", res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	out, err := ParseBatch(res.Stdout, token, len(cmds))
	if err != nil {
		return nil, fmt.Errorf("%w (stderr: %s)", err, strings.TrimSpace(string(res.Stderr)))
	}
	for i := range out {
		out[i].Duration = res.Duration
	}
	return out, nil
}

// BatchScript is the shell script RunAll sends: each probe's output goes to files in a private
// temporary folder, then every probe's outputs are printed behind a header line
// "<token> <index> <stdout bytes> <stderr bytes> <exit code>".
func BatchScript(prefix string, cmds []string, token string) string {
	var b strings.Builder
	b.WriteString(`d=$(mktemp -d) || exit 97; trap 'rm -rf "$d"' EXIT` + "\n")
	for i, c := range cmds {
		fmt.Fprintf(&b, "( %s%s\n) >\"$d/%d.o\" 2>\"$d/%d.e\" </dev/null; echo $? >\"$d/%d.c\"\n", prefix, c, i, i, i)
	}
	fmt.Fprintf(&b, "i=0; while [ $i -lt %d ]; do printf '%s %%d %%d %%d %%d\\n' $i $(wc -c <\"$d/$i.o\") $(wc -c <\"$d/$i.e\") $(cat \"$d/$i.c\"); cat \"$d/$i.o\" \"$d/$i.e\"; i=$((i+1)); done\n", len(cmds), token)
	return b.String()
}

// ParseBatch splits BatchScript's output into n results.
func ParseBatch(out []byte, token string, n int) ([]Result, error) {
	res := make([]Result, 0, n)
	for len(res) < n {
		nl := bytes.IndexByte(out, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("probe batch: output ends before probe %d of %d", len(res), n)
		}
		f := strings.Fields(string(out[:nl]))
		if len(f) != 5 || f[0] != token {
			return nil, fmt.Errorf("probe batch: expected a header for probe %d, got %q", len(res), string(out[:nl]))
		}
		idx, e1 := strconv.Atoi(f[1])
		no, e2 := strconv.Atoi(f[2])
		ne, e3 := strconv.Atoi(f[3])
		code, e4 := strconv.Atoi(f[4])
		if e1 != nil || e2 != nil || e3 != nil || e4 != nil || idx != len(res) {
			return nil, fmt.Errorf("probe batch: malformed header %q", string(out[:nl]))
		}
		out = out[nl+1:]
		if len(out) < no+ne {
			return nil, fmt.Errorf("probe batch: probe %d's output is truncated", idx)
		}
		res = append(res, Result{Stdout: append([]byte(nil), out[:no]...), Stderr: append([]byte(nil), out[no:no+ne]...), ExitCode: code})
		out = out[no+ne:]
	}
	return res, nil
}
