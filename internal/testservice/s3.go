package testservice

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3Server is a running S3-compatible server (versitygw on loopback).
type S3Server struct {
	Endpoint             string
	AccessKey, SecretKey string
}

var (
	s3Once   sync.Once
	s3Server *S3Server
	s3Err    error
)

// versitygw finds the versitygw binary: on PATH, or where go install puts
// it (`go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`).
func versitygw() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	p := filepath.Join(gopath, "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", errors.New("versitygw not found on PATH or in $GOPATH/bin (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	}
	return p, nil
}

// startS3 starts one versitygw for the whole test binary; it dies with it.
func startS3() (*S3Server, error) {
	bin, err := versitygw()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "exportbridge-s3-")
	if err != nil {
		return nil, err
	}
	srv := &S3Server{AccessKey: "exportbridge-test", SecretKey: "exportbridge-test-secret"}
	// versitygw takes an address, not a listener: a port found free may be
	// taken before it binds, so a start that fails is tried again.
	for range 5 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addr := l.Addr().String()
		l.Close()
		cmd := exec.Command(bin, "--access", srv.AccessKey, "--secret", srv.SecretKey, "--port", addr, "posix", dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
				c.Close()
				srv.Endpoint = "http://" + addr
				return srv, nil
			}
			select {
			case <-exited:
				deadline = time.Time{} // it did not come up: try another port
			case <-time.After(50 * time.Millisecond):
			}
		}
		_ = cmd.Process.Kill()
	}
	return nil, errors.New("versitygw did not start")
}

// S3 returns a running S3-compatible server and a new, empty bucket on it
// for t.
func S3(t testing.TB) (*S3Server, string) {
	t.Helper()
	s3Once.Do(func() { s3Server, s3Err = startS3() })
	if s3Err != nil {
		if required("s3") {
			t.Fatalf("s3 is required (EXPORTBRIDGE_TEST_REQUIRE) but unavailable: %v", s3Err)
		}
		t.Skipf("s3 unavailable: %v", s3Err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	bucket := "t-" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(s3Server.AccessKey, s3Server.SecretKey, "")))
	if err != nil {
		t.Fatal(err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(s3Server.Endpoint); o.UsePathStyle = true })
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("creating bucket %s: %v", bucket, fmt.Errorf("%w", err))
	}
	return s3Server, bucket
}
