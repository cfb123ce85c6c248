// Package ci holds pipeline examples (GitHub Actions, Azure Pipelines) that run azl-vmtest;
// this test keeps them honest: valid YAML, every make target they run exists, every file they
// publish is one the project writes.
package ci

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// commands collects every string under a "run" or "script" key, anywhere in the document.
func commands(n any, out *[]string) {
	switch v := n.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "run" || k == "script") {
				*out = append(*out, s)
			}
			commands(x, out)
		}
	case []any:
		for _, x := range v {
			commands(x, out)
		}
	}
}

// strings collects every string value in the document.
func allStrings(n any, out *[]string) {
	switch v := n.(type) {
	case string:
		*out = append(*out, v)
	case map[string]any:
		for _, x := range v {
			allStrings(x, out)
		}
	case []any:
		for _, x := range v {
			allStrings(x, out)
		}
	}
}

func TestPipelineExamples(t *testing.T) {
	makefile, err := os.ReadFile("../../Makefile")
	require.NoError(t, err)
	vmtests, err := os.ReadFile("../vmtests.sh")
	require.NoError(t, err)
	files, err := filepath.Glob("*.yml")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"azure-pipelines.yml", "github-actions.yml"}, files)
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			var doc map[string]any
			require.NoError(t, yaml.Unmarshal(b, &doc), "valid YAML")
			var cmds []string
			commands(doc, &cmds)
			require.NotEmpty(t, cmds)
			targets := 0
			for _, c := range cmds {
				for _, m := range regexp.MustCompile(`\bmake\s+([a-z][a-z0-9-]*)`).FindAllStringSubmatch(c, -1) {
					targets++
					assert.Regexp(t, `(?m)^`+regexp.QuoteMeta(m[1])+`:`, string(makefile), "%s runs `make %s`: no such target in the Makefile", f, m[1])
				}
			}
			assert.NotZero(t, targets, "%s runs no make target", f)
			var all []string
			allStrings(doc, &all)
			text := strings.Join(all, "\n")
			for _, published := range []string{"_artifacts/junit-*.xml", "_artifacts/summary.md"} {
				assert.Contains(t, text, published, "%s publishes %s", f, published)
			}
			assert.Contains(t, string(vmtests), "junit-", "scripts/vmtests.sh writes the JUnit files the pipelines publish")
			assert.Contains(t, string(vmtests), "summary.md", "scripts/vmtests.sh writes the summary the pipelines publish")
			assert.Regexp(t, `(?i)timeout[a-z-]*:\s*90\b`, string(b), "%s bounds the job at 90 minutes", f)
		})
	}
}
