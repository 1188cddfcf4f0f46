package testservice

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// Azurite is a running Azure Storage emulator (its blob service).
type Azurite struct {
	AccountURL, AccountName, AccountKey string
}

// The emulator's well-known development account.
const (
	azuriteAccount = "devstoreaccount1"
	azuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

var (
	azOnce   sync.Once
	azServer *Azurite
	azErr    error
)

// azuriteMain finds Azurite's blob service script: EXPORTBRIDGE_AZURITE,
// or where .ci/run installs it (npm install --prefix
// ~/.cache/exportbridge-azurite azurite).
func azuriteMain() (string, error) {
	if p := os.Getenv("EXPORTBRIDGE_AZURITE"); p != "" {
		return p, nil
	}
	home, _ := os.UserHomeDir()
	p := filepath.Join(home, ".cache", "exportbridge-azurite", "node_modules", "azurite", "dist", "src", "blob", "main.js")
	if _, err := os.Stat(p); err != nil {
		return "", errors.New("Azurite not found: set EXPORTBRIDGE_AZURITE to its dist/src/blob/main.js, or npm install --prefix ~/.cache/exportbridge-azurite azurite")
	}
	return p, nil
}

func startAzurite() (*Azurite, error) {
	main, err := azuriteMain()
	if err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "exportbridge-azurite-")
	if err != nil {
		return nil, err
	}
	// Azurite takes a port, not a listener: a start that fails because the
	// port was taken meanwhile is tried again.
	for range 5 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addr := l.Addr().(*net.TCPAddr)
		l.Close()
		cmd := exec.Command(node, main, "--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(addr.Port), "--location", dir,
			"--skipApiVersionCheck", "--silent", "--loose")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if c, err := net.DialTimeout("tcp", addr.String(), 100*time.Millisecond); err == nil {
				c.Close()
				return &Azurite{AccountURL: "http://" + addr.String() + "/" + azuriteAccount, AccountName: azuriteAccount, AccountKey: azuriteKey}, nil
			}
			select {
			case <-exited:
				deadline = time.Time{}
			case <-time.After(50 * time.Millisecond):
			}
		}
		_ = cmd.Process.Kill()
	}
	return nil, errors.New("Azurite did not start")
}

// AzureBlob returns a running Azure Storage emulator and a new, empty
// container on it for t.
func AzureBlob(t testing.TB) (*Azurite, string) {
	t.Helper()
	azOnce.Do(func() { azServer, azErr = startAzurite() })
	if azErr != nil {
		if required("azblob") {
			t.Fatalf("azblob is required (EXPORTBRIDGE_TEST_REQUIRE) but unavailable: %v", azErr)
		}
		t.Skipf("azblob unavailable: %v", azErr)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	container := "t-" + hex.EncodeToString(b)
	cred, err := azblob.NewSharedKeyCredential(azServer.AccountName, azServer.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	client, err := azblob.NewClientWithSharedKeyCredential(azServer.AccountURL, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.CreateContainer(ctx, container, nil); err != nil {
		t.Fatalf("creating container %s: %v", container, err)
	}
	return azServer, container
}
