package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"
)

//go:embed assets
var assetFS embed.FS

// asset is one embedded file, read once at start.
type asset struct {
	data    []byte
	ctype   string
	version string // a prefix of the content's SHA-256, for cache busting
}

// assetServer serves the embedded assets. URLs carry the content's version
// (/static/concerts.js?v=...), so a versioned URL is cached for a year and a new
// build is fetched at once; an unversioned one is revalidated by ETag.
type assetServer struct {
	files map[string]asset
}

func newAssetServer() *assetServer {
	s := &assetServer{files: map[string]asset{}}
	entries, err := fs.ReadDir(assetFS, "assets")
	if err != nil {
		panic("web: embedded assets: " + err.Error()) // cannot happen: embedded at build time
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := assetFS.ReadFile(path.Join("assets", e.Name()))
		if err != nil {
			panic("web: embedded assets: " + err.Error())
		}
		sum := sha256.Sum256(data)
		ctype := mime.TypeByExtension(path.Ext(e.Name()))
		if ctype == "" {
			ctype = "text/plain; charset=utf-8"
		}
		s.files[e.Name()] = asset{data: data, ctype: ctype, version: hex.EncodeToString(sum[:8])}
	}
	return s
}

// url returns the versioned URL of the asset name (for the templates).
func (s *assetServer) url(name string) string {
	a, ok := s.files[name]
	if !ok {
		panic("web: no asset " + name) // a template bug, caught by the tests
	}
	return "/static/" + name + "?v=" + a.version
}

func (s *assetServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	a, ok := s.files[name]
	if !ok {
		writeProblem(w, http.StatusNotFound, "no such asset: "+name)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", `"`+a.version+`"`)
	if r.URL.Query().Get("v") == a.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.data))
}
