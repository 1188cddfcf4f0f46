package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/exportbridge/exportbridge/internal/conf"
	"github.com/exportbridge/exportbridge/internal/store"
)

// AzblobConfig is [files.azblob]: converted files in an Azure Storage
// container.
type AzblobConfig struct {
	// AccountURL is the blob service: https://<account>.blob.core.windows.net
	// (or an emulator's). Taken from ConnectionString when that is set.
	AccountURL string `koanf:"account_url"`
	Container  string `koanf:"container"`
	// Prefix is put before every blob name. Default none.
	Prefix string `koanf:"prefix"`
	// AccountName and AccountKey sign requests and the SAS of each link;
	// or ConnectionString holds all three.
	AccountName      string `koanf:"account_name"`
	AccountKey       string `koanf:"account_key" secret:"true"`
	ConnectionString string `koanf:"connection_string" secret:"true"`
}

// Validate reports problems keyed relative to [files.azblob].
func (c AzblobConfig) Validate() conf.Problems {
	var ps conf.Problems
	if c.Container == "" {
		ps.Add("container", `is required for driver "azblob"`)
	}
	if c.ConnectionString == "" {
		if c.AccountURL == "" {
			ps.Add("account_url", "is required (or connection_string)")
		}
		if c.AccountName == "" || c.AccountKey == "" {
			ps.Add("account_key", "account_name and account_key are required (or connection_string): they sign the links")
		}
	} else if _, err := parseConnectionString(c.ConnectionString); err != nil {
		ps.Add("connection_string", "%v", err)
	}
	return ps
}

// parseConnectionString reads AccountName, AccountKey and BlobEndpoint
// (or DefaultEndpointsProtocol and EndpointSuffix) from an Azure Storage
// connection string.
func parseConnectionString(cs string) (AzblobConfig, error) {
	kv := map[string]string{}
	for _, part := range strings.Split(cs, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(part), "="); ok {
			kv[k] = v
		}
	}
	c := AzblobConfig{AccountName: kv["AccountName"], AccountKey: kv["AccountKey"], AccountURL: kv["BlobEndpoint"]}
	if c.AccountURL == "" && c.AccountName != "" {
		proto, suffix := kv["DefaultEndpointsProtocol"], kv["EndpointSuffix"]
		if proto == "" {
			proto = "https"
		}
		if suffix == "" {
			suffix = "core.windows.net"
		}
		c.AccountURL = proto + "://" + c.AccountName + ".blob." + suffix
	}
	if c.AccountName == "" || c.AccountKey == "" {
		return c, errors.New("needs AccountName and AccountKey (a key signs the links)")
	}
	return c, nil
}

// Azblob is Storage in an Azure Storage container. Its DownloadURLs carry
// a read-only SAS for one blob, so receivers fetch files from Azure.
type Azblob struct {
	client     *azblob.Client
	cred       *azblob.SharedKeyCredential
	accountURL string
	container  string
	prefix     string
	ttl        time.Duration
}

var _ Storage = (*Azblob)(nil)

// NewAzblob returns the container's storage; links live ttl.
func NewAzblob(c AzblobConfig, ttl time.Duration) (*Azblob, error) {
	if c.ConnectionString != "" {
		parsed, err := parseConnectionString(c.ConnectionString)
		if err != nil {
			return nil, fmt.Errorf("files: azblob connection_string: %w", err)
		}
		c.AccountURL, c.AccountName, c.AccountKey = parsed.AccountURL, parsed.AccountName, parsed.AccountKey
	}
	cred, err := azblob.NewSharedKeyCredential(c.AccountName, c.AccountKey)
	if err != nil {
		return nil, fmt.Errorf("files: azblob: %w", err)
	}
	client, err := azblob.NewClientWithSharedKeyCredential(c.AccountURL, cred, nil)
	if err != nil {
		return nil, fmt.Errorf("files: azblob: %w", err)
	}
	return &Azblob{client: client, cred: cred, accountURL: strings.TrimRight(c.AccountURL, "/"), container: c.Container, prefix: c.Prefix, ttl: ttl}, nil
}

// TTL is how long minted links live.
func (a *Azblob) TTL() time.Duration { return a.ttl }

// Link implements publish.URLMinter: the blob's URL with a read-only SAS.
// No start time: a start a little in the future (clock skew) is refused.
func (a *Azblob) Link(_ context.Context, art store.Artifact, expires time.Time) (string, error) {
	proto := sas.ProtocolHTTPS
	if strings.HasPrefix(a.accountURL, "http://") {
		proto = sas.ProtocolHTTPSandHTTP // an emulator on loopback
	}
	qp, err := sas.BlobSignatureValues{Protocol: proto, ExpiryTime: expires.UTC(), Permissions: (&sas.BlobPermissions{Read: true}).String(),
		ContainerName: a.container, BlobName: a.prefix + art.Key}.SignWithSharedKey(a.cred)
	if err != nil {
		return "", fmt.Errorf("files: signing a SAS for %s: %w", art.Key, err)
	}
	return a.blobURL(art.Key) + "?" + qp.Encode(), nil
}

func (a *Azblob) blobURL(key string) string {
	return a.accountURL + "/" + url.PathEscape(a.container) + "/" + escapePath(a.prefix+key)
}

// escapePath escapes each segment of a blob name.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// Ping checks the container is reachable (readiness).
func (a *Azblob) Ping(ctx context.Context) error {
	_, err := a.client.ServiceClient().NewContainerClient(a.container).GetProperties(ctx, nil)
	if err != nil {
		return fmt.Errorf("files: container %s: %w", a.container, err)
	}
	return nil
}

// Put implements Storage.
func (a *Azblob) Put(ctx context.Context, key, path string, meta Meta) error {
	if err := checkKey(key); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := &blob.HTTPHeaders{}
	if meta.ContentType != "" {
		h.BlobContentType = &meta.ContentType
	}
	if meta.ContentEncoding != "" {
		h.BlobContentEncoding = &meta.ContentEncoding
	}
	if _, err := a.client.UploadFile(ctx, a.container, a.prefix+key, f, &azblob.UploadFileOptions{HTTPHeaders: h}); err != nil {
		return fmt.Errorf("files: putting %s: %w", key, err)
	}
	f.Close()
	return os.Remove(path)
}

// Open implements Storage: ranged downloads, made as the reader reads.
func (a *Azblob) Open(ctx context.Context, key string) (Object, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	props, err := a.client.ServiceClient().NewContainerClient(a.container).NewBlobClient(a.prefix+key).GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("files: %s: %w", key, err)
	}
	info := ObjectInfo{Key: key}
	if props.ContentLength != nil {
		info.Size = *props.ContentLength
	}
	if props.LastModified != nil {
		info.ModTime = *props.LastModified
	}
	return &rangedObject{info: info, open: func(off int64) (io.ReadCloser, error) {
		resp, err := a.client.DownloadStream(ctx, a.container, a.prefix+key, &azblob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: off}})
		if err != nil {
			return nil, fmt.Errorf("files: reading %s: %w", key, err)
		}
		return resp.Body, nil
	}}, nil
}

// Delete implements Storage.
func (a *Azblob) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := a.client.DeleteBlob(ctx, a.container, a.prefix+key, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return fmt.Errorf("files: deleting %s: %w", key, err)
	}
	return nil
}

// List implements Storage: every blob under the prefix.
func (a *Azblob) List(ctx context.Context, fn func(ObjectInfo) error) error {
	pager := a.client.NewListBlobsFlatPager(a.container, &azblob.ListBlobsFlatOptions{Prefix: &a.prefix})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("files: listing %s: %w", a.container, err)
		}
		for _, b := range page.Segment.BlobItems {
			info := ObjectInfo{Key: strings.TrimPrefix(*b.Name, a.prefix)}
			if b.Properties != nil {
				if b.Properties.ContentLength != nil {
					info.Size = *b.Properties.ContentLength
				}
				if b.Properties.LastModified != nil {
					info.ModTime = *b.Properties.LastModified
				}
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}
