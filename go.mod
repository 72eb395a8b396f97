module github.com/pstate/pstate

go 1.26.8

require (
	github.com/benbjohnson/immutable v0.4.3 // indirect
	github.com/klauspost/compress v1.20.5 // indirect
	github.com/prometheus/client_golang v1.23.2 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	go.uber.org/zap v1.27.1 // indirect
	golang.org/x/exp v0.0.0-20220518171630-0b5c67f07fdf // indirect
	golang.org/x/sys v0.50.0 // indirect
	pgregory.net/rapid v1.2.0 // indirect
)
