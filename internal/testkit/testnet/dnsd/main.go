package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// rrFlags collects repeated -rr values.
type rrFlags []string

func (f *rrFlags) String() string     { return strings.Join(*f, "; ") }
func (f *rrFlags) Set(s string) error { *f = append(*f, s); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("dnsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:53", "UDP and TCP address to serve on")
	zoneFile := fs.String("zone", "", "zone file: one \"name TYPE value\" per line (A, AAAA, CNAME)")
	ttl := fs.Uint("ttl", 60, "TTL of every record, seconds")
	soa := fs.String("soa", "test.", "apex named in the SOA of negative answers")
	silent := fs.Bool("silent", false, "read queries and never answer")
	var rrs rrFlags
	fs.Var(&rrs, "rr", "a record \"name TYPE value\" (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	z := newZone(uint32(*ttl), *soa)
	if *zoneFile != "" {
		f, err := os.Open(*zoneFile)
		if err != nil {
			log.Error("opening zone", "err", err)
			return 1
		}
		err = z.readFile(f)
		f.Close()
		if err != nil {
			log.Error("reading zone", "file", *zoneFile, "err", err)
			return 1
		}
	}
	for _, rr := range rrs {
		if err := z.addLine(rr); err != nil {
			log.Error("adding record", "err", err)
			return 1
		}
	}
	s := &server{zone: z, silent: *silent, log: log}
	if err := s.serve(ctx, *listen); err != nil {
		log.Error("serving", "err", err)
		return 1
	}
	return 0
}

// server answers queries from zone on UDP and TCP until its context ends.
type server struct {
	zone   *zone
	silent bool
	log    *slog.Logger
}

func (s *server) serve(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return fmt.Errorf("listening on udp %s: %w", addr, err)
	}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("listening on tcp %s: %w", addr, err)
	}
	s.log.Info("serving", "addr", addr, "silent", s.silent, "names", len(s.zone.recs))

	// Closing the sockets is what unblocks the read loops on cancel.
	go func() {
		<-ctx.Done()
		pc.Close()
		ln.Close()
	}()
	var wg sync.WaitGroup
	wg.Go(func() { s.serveUDP(pc) })
	wg.Go(func() { s.serveTCP(ctx, ln) })
	wg.Wait()
	return nil
}

func (s *server) serveUDP(pc net.PacketConn) {
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("reading udp", "err", err)
			}
			return
		}
		reply := s.handle("udp", from, buf[:n])
		if reply == nil {
			continue
		}
		if len(reply) > 512 {
			reply = truncate(reply)
		}
		if _, err := pc.WriteTo(reply, from); err != nil {
			s.log.Warn("writing udp reply", "to", from, "err", err)
		}
	}
}

// truncate cuts a UDP reply to its header and question and sets TC, so the
// client retries over TCP.
func truncate(reply []byte) []byte {
	// Header (12 bytes) with all counts but QDCOUNT zeroed, then the question.
	qlen := 0
	for i := 12; i < len(reply); {
		l := int(reply[i])
		if l == 0 {
			qlen = i + 1 + 4 - 12
			break
		}
		i += 1 + l
	}
	out := append([]byte(nil), reply[:12+qlen]...)
	out[2] |= 0x02
	binary.BigEndian.PutUint16(out[6:], 0)
	binary.BigEndian.PutUint16(out[8:], 0)
	binary.BigEndian.PutUint16(out[10:], 0)
	return out
}

func (s *server) serveTCP(ctx context.Context, ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("accepting tcp", "err", err)
			}
			return
		}
		wg.Go(func() {
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			defer c.Close()
			s.serveConn(c)
		})
	}
}

// serveConn answers length-prefixed queries on one TCP connection; an idle
// connection is closed after 10 s so a stuck client cannot hold it forever.
func (s *server) serveConn(c net.Conn) {
	var lenBuf [2]byte
	for {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(lenBuf[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		reply := s.handle("tcp", c.RemoteAddr(), msg)
		if reply == nil {
			continue
		}
		out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reply)), uint16(len(reply)))
		if _, err := c.Write(append(out, reply...)); err != nil {
			return
		}
	}
}

// handle returns the reply to msg, or nil when nothing must be sent.
func (s *server) handle(proto string, from net.Addr, msg []byte) []byte {
	if s.silent {
		s.log.Info("query ignored (silent)", "proto", proto, "from", from, "bytes", len(msg))
		return nil
	}
	reply, err := s.zone.answer(msg)
	if err != nil {
		s.log.Warn("bad query", "proto", proto, "from", from, "err", err)
		return nil
	}
	s.log.Info("query answered", "proto", proto, "from", from, "bytes", len(reply))
	return reply
}
