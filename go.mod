module github.com/ferry-server/ferry

go 1.26.8
