/// One file of the page, held in memory so that answering a request never touches the disk.
struct StaticFile {
    let body: [UInt8]
    let contentType: String
    /// Strong: derived from the bytes, so it changes exactly when the content does, whatever the clock says.
    let etag: String
    /// Epoch seconds, never later than the moment the file was loaded.
    let lastModified: Int
    let lastModifiedText: String
    let cacheControl: String
}

extension StaticFile {
    /// HTML is always revalidated so that a deploy shows at once; the assets it names may be reused for an hour,
    /// and revalidation of those is cheap thanks to the ETag.
    static let htmlCacheControl = "no-cache"
    static let assetCacheControl = "public, max-age=3600"

    init(name: String, body: [UInt8], lastModified: Int) {
        let type = MIMEType.forFileName(name)
        self.init(body: body,
                  contentType: type,
                  etag: StaticEntityTag.make(for: body),
                  lastModified: lastModified,
                  lastModifiedText: HTTPDate.format(lastModified),
                  cacheControl: type.utf8.starts(with: "text/html".utf8) ? Self.htmlCacheControl : Self.assetCacheControl)
    }
}
