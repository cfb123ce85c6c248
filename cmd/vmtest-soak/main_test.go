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

func ev(action, test string) string {
	return `{"Action":"` + action + `","Package":"github.com/azl-vmtest/azl-vmtest/suites/boot","Test":"` + test + `"}`
}

func TestTableCallsFlakyFlaky(t *testing.T) {
	out, failed := table([]results{
		run(ev("pass", "TestA"), ev("pass", "TestB"), ev("skip", "TestC"), `not json`),
		run(ev("pass", "TestA"), ev("fail", "TestB"), ev("skip", "TestC")),
	}, []string{"", "56292ef"})
	require.True(t, failed)
	assert.Contains(t, out, "| `boot/TestA` | ok | ok | stable |")
	assert.Contains(t, out, "| `boot/TestB` | ok | FAIL | **flaky** |")
	assert.Contains(t, out, "| `boot/TestC` | skip | skip | skipped |")
	assert.Contains(t, out, "2 runs, 3 tests: 1 flaky, 0 failing")

	assert.Contains(t, out, "| test | 1 | 2 (56292ef) | verdict |", "a run's commit heads its column")
	_, failed = table([]results{run(ev("pass", "TestA")), run(ev("pass", "TestA"))}, nil)
	assert.False(t, failed)
}
