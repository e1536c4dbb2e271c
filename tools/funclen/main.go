// Command funclen lists the functions outside tests longer than -max lines
// (from func to its closing brace), longest first, and exits 1 if there are
// any: issue 20's "no function outside tests over 100 lines".
//
//	cd tools && go run ./funclen ../cmd ../internal
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// long is one function over the limit.
type long struct {
	lines int
	where string // file:line
	name  string // Recv.Name for methods
}

func main() {
	max := flag.Int("max", 100, "the most lines a function may have")
	flag.Parse()
	var found []long
	for _, root := range flag.Args() {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			ls, err := longFuncs(path, src, *max)
			found = append(found, ls...)
			return err
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "funclen:", err)
			os.Exit(2)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].lines > found[j].lines })
	for _, l := range found {
		fmt.Printf("%4d %s %s\n", l.lines, l.where, l.name)
	}
	if len(found) > 0 {
		os.Exit(1)
	}
}

// longFuncs finds the function declarations of one file over max lines.
func longFuncs(path string, src []byte, max int) ([]long, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, 0)
	if err != nil {
		return nil, err
	}
	var out []long
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		start := fset.Position(fn.Pos())
		n := fset.Position(fn.Body.End()).Line - start.Line + 1
		if n <= max {
			continue
		}
		name := fn.Name.Name
		if fn.Recv != nil && len(fn.Recv.List) > 0 {
			name = recvName(fn.Recv.List[0].Type) + "." + name
		}
		out = append(out, long{lines: n, where: fmt.Sprintf("%s:%d", path, start.Line), name: name})
	}
	return out, nil
}

// recvName is the type name of a receiver: T for T, *T, T[K] and *T[K].
func recvName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return recvName(e.X)
	case *ast.IndexExpr:
		return recvName(e.X)
	case *ast.IndexListExpr:
		return recvName(e.X)
	case *ast.Ident:
		return e.Name
	}
	return "?"
}
