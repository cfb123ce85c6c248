package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func run(events ...string) results {
	r, err := read(strings.NewReader(strings.Join(events, "\n")))
	if err != nil {
		panic(err)
	}
	return r
}

func pkgEv(action string) string {
	return `{"Action":"` + action + `","Package":"github.com/azl-vmtest/azl-vmtest/suites/boot"}`
}

func ev(action, test string) string {
	return `{"Action":"` + action + `","Package":"github.com/azl-vmtest/azl-vmtest/suites/boot","Test":"` + test + `"}`
}

func TestTableCallsFlakyFlaky(t *testing.T) {
	out, failed := table([]results{
		run(ev("pass", "TestA"), ev("pass", "TestB"), ev("skip", "TestC"), `not json`, pkgEv("pass")),
		run(ev("pass", "TestA"), ev("fail", "TestB"), ev("skip", "TestC"), pkgEv("fail")),
	}, []string{"", "56292ef"})
	require.True(t, failed)
	assert.Contains(t, out, "| `boot/TestA` | ok | ok | stable |")
	assert.Contains(t, out, "| `boot/TestB` | ok | FAIL | **flaky** |")
	assert.Contains(t, out, "| `boot/TestC` | skip | skip | skipped |")
	assert.Contains(t, out, "2 runs, 4 tests: 2 flaky, 0 failing")

	assert.Contains(t, out, "| test | 1 | 2 (56292ef) | verdict |", "a run's commit heads its column")
	_, failed = table([]results{run(ev("pass", "TestA"), pkgEv("pass")), run(ev("pass", "TestA"), pkgEv("pass"))}, nil)
	assert.False(t, failed)
}

// A package can fail with every test in it passing (a build error, a shared VM's clean-up, a
// panic in TestMain), and a run cut short leaves it unended: both are failures in the table.
func TestTableCountsThePackageAsAWhole(t *testing.T) {
	out, failed := table([]results{
		run(ev("pass", "TestA"), pkgEv("pass")),
		run(ev("pass", "TestA"), pkgEv("fail")),
	}, nil)
	require.True(t, failed, "a package that failed with its tests passing fails the soak")
	assert.Contains(t, out, "| `boot/(package)` | ok | FAIL | **flaky** |")
	assert.Contains(t, out, "| `boot/TestA` | ok | ok | stable |")

	out, failed = table([]results{run(ev("pass", "TestA"), pkgEv("pass")), run(ev("run", "TestA"))}, nil)
	require.True(t, failed, "a run cut short (no package end) fails the soak")
	assert.Contains(t, out, "| `boot/(package)` | ok | FAIL | **flaky** |")

	_, failed = table([]results{run(ev("pass", "TestA"), pkgEv("pass")), run(ev("pass", "TestA"), pkgEv("pass"))}, nil)
	assert.False(t, failed)
}

// A run that failed outside any package (go test refused a flag, go was missing) has an empty
// or clean JSON stream: its exit status, or having run no package at all, fails it.
func TestTableCountsTheRunAsAWhole(t *testing.T) {
	empty := run()
	out, failed := table([]results{run(ev("pass", "TestA"), pkgEv("pass")), empty}, nil)
	require.True(t, failed, "a run that ran no package fails the soak")
	assert.Contains(t, out, "| `(go test exit status)` | - | FAIL |")

	clean := func(rc string) results {
		r := run(ev("pass", "TestA"), pkgEv("pass"))
		exitStatus(r, rc)
		return r
	}
	out, failed = table([]results{clean("0\n"), clean("2\n")}, nil)
	require.True(t, failed, "a run whose go test exited 2 fails the soak, however clean its JSON")
	assert.Contains(t, out, "| `(go test exit status)` | ok | FAIL | **flaky** |")

	_, failed = table([]results{clean("0\n"), clean("")}, nil)
	assert.False(t, failed, "exit status 0, or none recorded (an older run), fails nothing")

	r := run()
	exitStatus(r, "0")
	_, failed = table([]results{r}, nil)
	assert.True(t, failed, "exit status 0 does not make a run that ran nothing pass")
}
