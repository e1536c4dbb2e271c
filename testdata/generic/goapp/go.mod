module goapp

go 1.22
