package main

import (
	"strings"
	"testing"
)

func TestLongFuncs(t *testing.T) {
	body := strings.Repeat("\tx++\n", 3)
	src := "package p\n\nfunc short() {\n\tx := 0\n\tx++\n}\n\n" +
		"func (r *T[K]) long() {\n\tx := 0\n" + body + "}\n\nvar f = func() {}\n"
	got, err := longFuncs("p.go", []byte(src), 5)
	if err != nil {
		t.Fatal(err)
	}
	// long: its func line, x := 0, three x++, the brace: 6 lines.
	if len(got) != 1 || got[0] != (long{lines: 6, where: "p.go:8", name: "T.long"}) {
		t.Fatalf("got %+v", got)
	}
	if got, _ := longFuncs("p.go", []byte(src), 6); len(got) != 0 {
		t.Errorf("at max 6: %+v", got)
	}
	if _, err := longFuncs("p.go", []byte("package p\nfunc ("), 6); err == nil {
		t.Error("a file that does not parse gave no error")
	}
}
