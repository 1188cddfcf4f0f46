package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/exportbridge/exportbridge/internal/conf"
	"github.com/exportbridge/exportbridge/internal/store"
)

// S3Config is [files.s3]: converted files in an S3 bucket (AWS or any
// S3-compatible service).
type S3Config struct {
	Bucket string `koanf:"bucket"`
	// Prefix is put before every key ("exportbridge/"). Default none.
	Prefix string `koanf:"prefix"`
	// Region of the bucket. Default "us-east-1".
	Region string `koanf:"region"`
	// Endpoint of an S3-compatible service (MinIO, versitygw, …); empty:
	// AWS.
	Endpoint string `koanf:"endpoint"`
	// PublicEndpoint is the host presigned DownloadURLs are minted for, when
	// receivers reach the store by another name than exportbridge does.
	// Default Endpoint.
	PublicEndpoint string `koanf:"public_endpoint"`
	// PathStyle addresses buckets as host/bucket/key (most S3-compatible
	// services) instead of bucket.host/key.
	PathStyle bool `koanf:"path_style"`
	// AccessKeyID and SecretAccessKey; both empty: the SDK's default chain
	// (environment, shared config, instance role).
	AccessKeyID     string `koanf:"access_key_id" secret:"true"`
	SecretAccessKey string `koanf:"secret_access_key" secret:"true"`
}

// maxPresign is the longest a presigned S3 URL may live (SigV4's limit).
const maxPresign = 7 * 24 * time.Hour

// Validate reports problems keyed relative to [files.s3].
func (c S3Config) Validate() conf.Problems {
	var ps conf.Problems
	if c.Bucket == "" {
		ps.Add("bucket", `is required for driver "s3"`)
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		ps.Add("access_key_id", "and secret_access_key go together (or both empty: the SDK's default credentials)")
	}
	for key, v := range map[string]string{"endpoint": c.Endpoint, "public_endpoint": c.PublicEndpoint} {
		if v != "" && !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
			ps.Add(key, "must be an http(s) URL")
		}
	}
	return ps
}

// S3 is Storage in an S3 bucket. Its DownloadURLs are presigned GETs, so
// receivers fetch files from the store, with the stored Content-Type and
// Content-Encoding.
type S3 struct {
	client  *s3.Client
	presign *s3.PresignClient
	bucket  string
	prefix  string
	ttl     time.Duration
}

var _ Storage = (*S3)(nil)

// NewS3 returns the bucket's storage; links live ttl (at most 7 days).
func NewS3(ctx context.Context, c S3Config, ttl time.Duration) (*S3, error) {
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(c.Region)}
	if c.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("files: s3: %w", err)
	}
	client := func(endpoint string) *s3.Client {
		return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
			if endpoint != "" {
				o.BaseEndpoint = aws.String(endpoint)
			}
			o.UsePathStyle = c.PathStyle
		})
	}
	public := c.PublicEndpoint
	if public == "" {
		public = c.Endpoint
	}
	return &S3{client: client(c.Endpoint), presign: s3.NewPresignClient(client(public)), bucket: c.Bucket, prefix: c.Prefix,
		ttl: min(ttl, maxPresign)}, nil
}

// TTL is how long minted links live.
func (s *S3) TTL() time.Duration { return s.ttl }

// Link implements publish.URLMinter: a presigned GET of the artifact.
func (s *S3) Link(ctx context.Context, a store.Artifact, expires time.Time) (string, error) {
	d := min(max(time.Until(expires), time.Second), maxPresign)
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + a.Key)},
		s3.WithPresignExpires(d))
	if err != nil {
		return "", fmt.Errorf("files: presigning %s: %w", a.Key, err)
	}
	return req.URL, nil
}

// Ping checks the bucket is reachable (readiness).
func (s *S3) Ping(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	if err != nil {
		return fmt.Errorf("files: bucket %s: %w", s.bucket, err)
	}
	return nil
}

// Put implements Storage.
func (s *S3) Put(ctx context.Context, key, path string, meta Meta) error {
	if err := checkKey(key); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	in := &s3.PutObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key), Body: f, ContentLength: aws.Int64(fi.Size())}
	if meta.ContentType != "" {
		in.ContentType = aws.String(meta.ContentType)
	}
	if meta.ContentEncoding != "" {
		in.ContentEncoding = aws.String(meta.ContentEncoding)
	}
	if _, err := s.client.PutObject(ctx, in); err != nil {
		return fmt.Errorf("files: putting %s: %w", key, err)
	}
	f.Close()
	return os.Remove(path)
}

// notFound reports S3's answers for a missing object.
func notFound(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NotFound", "NoSuchKey":
			return true
		}
	}
	return false
}

// Open implements Storage: ranged GETs, made as the reader reads.
func (s *S3) Open(ctx context.Context, key string) (Object, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if notFound(err) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("files: %s: %w", key, err)
	}
	info := ObjectInfo{Key: key, Size: aws.ToInt64(head.ContentLength), ModTime: aws.ToTime(head.LastModified)}
	return &rangedObject{info: info, open: func(off int64) (io.ReadCloser, error) {
		out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key), Range: aws.String(fmt.Sprintf("bytes=%d-", off))})
		if err != nil {
			return nil, fmt.Errorf("files: reading %s: %w", key, err)
		}
		return out.Body, nil
	}}, nil
}

// rangedObject reads an object from its current offset with one request,
// opened at the first Read after a Seek (object stores serve ranges).
type rangedObject struct {
	info ObjectInfo
	open func(off int64) (io.ReadCloser, error)
	off  int64
	body io.ReadCloser
}

func (o *rangedObject) Info() ObjectInfo { return o.info }

func (o *rangedObject) Read(p []byte) (int, error) {
	if o.off >= o.info.Size {
		return 0, io.EOF
	}
	if o.body == nil {
		body, err := o.open(o.off)
		if err != nil {
			return 0, err
		}
		o.body = body
	}
	n, err := o.body.Read(p)
	o.off += int64(n)
	return n, err
}

func (o *rangedObject) Seek(offset int64, whence int) (int64, error) {
	var to int64
	switch whence {
	case io.SeekStart:
		to = offset
	case io.SeekCurrent:
		to = o.off + offset
	case io.SeekEnd:
		to = o.info.Size + offset
	}
	if to < 0 {
		return o.off, errors.New("files: seek before the start")
	}
	if to != o.off && o.body != nil {
		o.body.Close()
		o.body = nil
	}
	o.off = to
	return to, nil
}

func (o *rangedObject) Close() error {
	if o.body != nil {
		return o.body.Close()
	}
	return nil
}

// Delete implements Storage (S3 answers success for a missing object).
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil && !notFound(err) {
		return fmt.Errorf("files: deleting %s: %w", key, err)
	}
	return nil
}

// List implements Storage: every object under the prefix.
func (s *S3) List(ctx context.Context, fn func(ObjectInfo) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("files: listing %s: %w", s.bucket, err)
		}
		for _, o := range page.Contents {
			if err := fn(ObjectInfo{Key: strings.TrimPrefix(aws.ToString(o.Key), s.prefix), Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}
