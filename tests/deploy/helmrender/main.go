// helmrender renders a Helm chart's templates the way `helm template` does, for machines
// without helm: Go text/template + sprig, plus Helm's own functions (include, tpl, required,
// fail, toYaml, fromYaml, toJson, lookup), .Values (values.yaml deep-merged with -f files
// and --set-string style key=value), .Release, .Chart, .Files, .Template and .Capabilities.
// It does not replace `helm lint` (no chart schema or Kubernetes schema checks); the
// manifests it prints are checked by tests/deploy/check_helm_render.py.
//
// Usage: helmrender CHART_DIR [-f values.yaml]... [--set a.b=value]... [--notes]
// Exit 1 with the template error on stderr when rendering fails.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	yaml "gopkg.in/yaml.v2"
)

// normalize turns yaml.v2 output into what Helm's values look like: map[string]interface{}
// and float64 numbers (Helm decodes values through JSON).
func normalize(v interface{}) interface{} {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := map[string]interface{}{}
		for k, val := range t {
			m[fmt.Sprint(k)] = normalize(val)
		}
		return m
	case map[string]interface{}:
		for k, val := range t {
			t[k] = normalize(val)
		}
		return t
	case []interface{}:
		for i := range t {
			t[i] = normalize(t[i])
		}
		return t
	case int:
		return float64(t)
	case int64:
		return float64(t)
	default:
		return v
	}
}

func merge(dst, src map[string]interface{}) {
	for k, v := range src {
		if sv, ok := v.(map[string]interface{}); ok {
			if dv, ok := dst[k].(map[string]interface{}); ok {
				merge(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
}

func loadYAML(file string) map[string]interface{} {
	data, err := os.ReadFile(file)
	if err != nil {
		fatal(err)
	}
	var raw interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		fatal(fmt.Errorf("%s: %w", file, err))
	}
	if raw == nil {
		return map[string]interface{}{}
	}
	return normalize(raw).(map[string]interface{})
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "helmrender:", err)
	os.Exit(1)
}

// Files is .Files: every file of the chart by its path relative to the chart root.
type Files map[string][]byte

func (f Files) Get(name string) string { return string(f[name]) }

func main() {
	if len(os.Args) < 2 {
		fatal(fmt.Errorf("usage: helmrender CHART_DIR [-f values.yaml]... [--set k=v]... [--notes]"))
	}
	chartDir := os.Args[1]
	values := loadYAML(filepath.Join(chartDir, "values.yaml"))
	notes := false
	for i := 2; i < len(os.Args); i++ {
		switch os.Args[i] {
		case "-f":
			i++
			merge(values, loadYAML(os.Args[i]))
		case "--set":
			i++
			kv := strings.SplitN(os.Args[i], "=", 2)
			keys := strings.Split(kv[0], ".")
			m := values
			for _, k := range keys[:len(keys)-1] {
				next, ok := m[k].(map[string]interface{})
				if !ok {
					next = map[string]interface{}{}
					m[k] = next
				}
				m = next
			}
			m[keys[len(keys)-1]] = kv[1]
		case "--notes":
			notes = true
		default:
			fatal(fmt.Errorf("unknown argument %q", os.Args[i]))
		}
	}

	chart := loadYAML(filepath.Join(chartDir, "Chart.yaml"))
	name := fmt.Sprint(chart["name"])
	files := Files{}
	filepath.Walk(chartDir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(chartDir, p)
			data, _ := os.ReadFile(p)
			files[filepath.ToSlash(rel)] = data
		}
		return nil
	})

	tpl := template.New("gotpl")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		var raw interface{}
		if err := yaml.Unmarshal([]byte(s), &raw); err != nil || raw == nil {
			return map[string]interface{}{}
		}
		m, _ := normalize(raw).(map[string]interface{})
		return m
	}
	funcs["toJson"] = func(v interface{}) string { b, _ := json.Marshal(v); return string(b) }
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return v, fmt.Errorf("%s", msg)
		}
		return v, nil
	}
	funcs["fail"] = func(msg string) (string, error) { return "", fmt.Errorf("%s", msg) }
	funcs["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	funcs["include"] = func(n string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := tpl.ExecuteTemplate(&buf, n, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := tpl.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	tpl.Funcs(funcs).Option("missingkey=zero")

	var names []string
	for rel, data := range files {
		if !strings.HasPrefix(rel, "templates/") {
			continue
		}
		full := path.Join(name, rel)
		if _, err := tpl.New(full).Parse(string(data)); err != nil {
			fatal(err)
		}
		base := path.Base(rel)
		if strings.HasPrefix(base, "_") {
			continue
		}
		if base == "NOTES.txt" && !notes {
			continue
		}
		names = append(names, full)
	}
	sort.Strings(names)

	top := map[string]interface{}{
		"Values":  values,
		"Release": map[string]interface{}{"Name": "test", "Namespace": "immunizer", "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Chart": map[string]interface{}{"Name": name, "Version": fmt.Sprint(chart["version"]),
			"AppVersion": fmt.Sprint(chart["appVersion"])},
		"Files":        files,
		"Capabilities": map[string]interface{}{"KubeVersion": map[string]interface{}{"Version": "v1.29.0", "Major": "1", "Minor": "29"}},
	}
	for _, n := range names {
		top["Template"] = map[string]interface{}{"Name": n, "BasePath": path.Join(name, "templates")}
		var buf bytes.Buffer
		if err := tpl.ExecuteTemplate(&buf, n, top); err != nil {
			fatal(err)
		}
		out := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.TrimSpace(out) == "" {
			continue
		}
		fmt.Printf("---\n# Source: %s\n%s\n", n, out)
	}
}
