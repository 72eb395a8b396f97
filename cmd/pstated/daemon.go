package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/pstate/pstate/cmd/internal/datadir"
	"github.com/pstate/pstate/cmd/internal/netaddr"
	"github.com/pstate/pstate/cmd/internal/sdnotify"
	"github.com/pstate/pstate/cmd/internal/server"
)

// Time limits of a stop.
const (
	// drainTimeout bounds how long in-flight requests may take to finish
	// once the listeners are closed; then their connections are cut.
	drainTimeout = 70 * time.Second
	// closeTimeout bounds the final checkpoint.
	closeTimeout = 10 * time.Minute
)

// daemon is one run of pstated.
type daemon struct {
	cfg    *config
	log    *zap.Logger
	notify *sdnotify.Notifier

	servers []httpServer // the API and metrics servers, all started
	serveWG sync.WaitGroup
	serveCh chan error // the first Serve failure
}

// run starts the daemon, serves until SIGTERM or SIGINT and stops it.
func (d *daemon) run() error {
	cfg := d.cfg
	token, err := d.checkAuth()
	if err != nil {
		return err
	}
	unlock, err := datadir.Lock(cfg.dataDir)
	if err != nil {
		return err
	}
	defer func() {
		if err := unlock(); err != nil {
			d.log.Warn("unlock data dir", zap.Error(err))
		}
	}()
	d.log.Info("starting", zap.String("version", version), zap.String("data_dir", cfg.dataDir),
		zap.Strings("listen", cfg.listen), zap.String("metrics_listen", cfg.metricsListen),
		zap.String("sync", cfg.sync.String()), zap.Bool("auth", token != nil))

	reg := prometheus.NewRegistry()
	server.RegisterRuntime(reg)
	srv := server.New(server.Config{
		DataDir:            cfg.dataDir,
		Sync:               cfg.sync,
		SyncInterval:       cfg.syncInterval,
		CheckpointInterval: cfg.checkpointInterval,
		CheckpointWALBytes: walBytesOption(cfg.checkpointWALBytes),
		SnapshotsKeep:      cfg.snapshotsKeep,
		RetainFinished:     cfg.retainFinished,
		Token:              token,
		Version:            version,
		Logger:             d.log,
		Registerer:         reg,
		OnProgress:         d.onProgress,
	})

	// Serve first, so that /healthz and /readyz answer during a long
	// recovery; everything else is 503 until Open returns.
	d.serveCh = make(chan error, 1)
	if err := d.listen(srv, reg); err != nil {
		d.stopServers()
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := srv.Open(); err != nil {
		d.stopServers()
		return err
	}
	d.log.Info("ready", zap.Strings("listen", cfg.listen))
	d.sdNotify(sdnotify.Ready, sdnotify.Status("ready"))
	wdDone := d.watchdog(srv)

	var serveErr error
	select {
	case <-ctx.Done():
		d.log.Info("stopping: signal received")
	case serveErr = <-d.serveCh:
		d.log.Error("stopping: a listener failed", zap.Error(serveErr))
	}
	// A second signal now kills the process at once (the log is durable).
	stop()
	d.sdNotify(sdnotify.Stopping, sdnotify.Status("stopping"))
	close(wdDone)
	srv.BeginStop()
	d.stopServers()

	cctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return errors.Join(serveErr, srv.Close(cctx))
}

// walBytesOption maps the flag's 0 (no size trigger) to the server's.
func walBytesOption(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

// checkAuth reads the token and refuses a TCP listener off loopback
// without one.
func (d *daemon) checkAuth() ([]byte, error) {
	var token []byte
	if d.cfg.authTokenFile != "" {
		t, err := server.ReadToken(d.cfg.authTokenFile)
		if err != nil {
			return nil, err
		}
		token = t
	}
	for _, a := range d.cfg.listen {
		network, _, _ := netaddr.Parse(a)
		if network == "tcp" && !netaddr.IsLoopback(a) && token == nil {
			return nil, usagef("--listen %s is not a loopback address: "+
				"--auth-token-file is required", a)
		}
	}
	return token, nil
}

// listen opens every listener and starts serving on it.
func (d *daemon) listen(srv *server.Server, reg *prometheus.Registry) error {
	for _, a := range d.cfg.listen {
		l, err := server.Listen(a)
		if err != nil {
			return err
		}
		tcp := l.Addr().Network() == "tcp"
		d.serve(srv.APIServer(tcp), l, "api")
	}
	if d.cfg.metricsListen == "" {
		return nil
	}
	l, err := server.Listen(d.cfg.metricsListen)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: zap.NewStdLog(d.log.Named("metrics")),
	}))
	d.serve(&http.Server{
		Handler:           mux,
		ReadHeaderTimeout: server.ReadHeaderTimeout,
		ReadTimeout:       server.ReadTimeout,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       server.IdleTimeout,
		ErrorLog:          zap.NewStdLog(d.log.Named("metrics")),
	}, l, "metrics")
	return nil
}

// httpServer is an *http.Server or a *server.APIServer.
type httpServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// serve runs hs on l in the background.
func (d *daemon) serve(hs httpServer, l net.Listener, role string) {
	d.log.Info("listening", zap.String("role", role), zap.String("network", l.Addr().Network()),
		zap.String("addr", l.Addr().String()))
	d.servers = append(d.servers, hs)
	d.serveWG.Add(1)
	go func() {
		defer d.serveWG.Done()
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case d.serveCh <- fmt.Errorf("serve %s: %w", l.Addr(), err):
			default:
			}
		}
	}()
}

// stopServers closes the listeners and lets in-flight requests finish
// (bounded by drainTimeout), all servers at once.
func (d *daemon) stopServers() {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, hs := range d.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs.Shutdown(ctx); err != nil {
				d.log.Warn("in-flight requests cut", zap.Error(err))
				_ = hs.Close()
			}
		}()
	}
	wg.Wait()
	d.serveWG.Wait()
}

// watchdog pings the systemd watchdog at half its timeout while the
// engine's event loop answers; close the returned channel to stop it.
func (d *daemon) watchdog(srv *server.Server) chan struct{} {
	done := make(chan struct{})
	every := sdnotify.WatchdogInterval()
	if every <= 0 || !d.notify.Enabled() {
		return done
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), every)
			err := srv.Alive(ctx)
			cancel()
			if err != nil {
				// No ping: systemd restarts a daemon whose loop is stuck.
				d.log.Error("event loop does not answer; watchdog not pinged", zap.Error(err))
				continue
			}
			d.sdNotify(sdnotify.Watchdog)
		}
	}()
	return done
}

// onProgress keeps systemd patient during a long recovery: each report
// proves progress, so it extends the start timeout and pings the watchdog.
func (d *daemon) onProgress(p datadir.Progress) {
	if p.Done {
		return
	}
	status := fmt.Sprintf("recovering: %d records replayed", p.Records)
	if p.Phase == datadir.PhaseSnapshot {
		status = fmt.Sprintf("recovering: snapshot %d of %d bytes read", p.Bytes, p.Size)
	}
	d.sdNotify(sdnotify.ExtendTimeout(30*time.Second), sdnotify.Watchdog, sdnotify.Status(status))
}

func (d *daemon) sdNotify(assignments ...string) {
	if err := d.notify.Notify(assignments...); err != nil {
		d.log.Warn("sd_notify", zap.Error(err))
	}
}
