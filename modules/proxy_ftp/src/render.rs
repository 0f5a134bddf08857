//! What the client sees: a directory listing as an HTML page (every name
//! escaped, each linked relative to the directory), and a Content-Type
//! from a file's extension.

/// The page for the `LIST` output of `dir` (decoded, ending in `/`).
pub fn listing(dir: &str, list: &str) -> String {
    let title = escape(dir);
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1>\n<hr><pre>\n"
    );
    if dir != "/" {
        page.push_str("<a href=\"../\">Parent Directory</a>\n");
    }
    for line in list.lines().map(|l| l.trim_end_matches('\r')) {
        if line.is_empty() || line.starts_with("total ") {
            continue;
        }
        let (info, name, is_dir) = split_entry(line);
        if name == "." || name == ".." {
            continue;
        }
        let slash = if is_dir { "/" } else { "" };
        page.push_str(&format!(
            "{}<a href=\"{}{slash}\">{}{slash}</a>\n",
            escape(info),
            escape(&encode(name)),
            escape(name)
        ));
    }
    page.push_str("</pre><hr></body></html>\n");
    page
}

/// A Unix `ls -l` line into its columns before the name, the name, and
/// whether it is a directory. Any other format: the whole line is the name.
fn split_entry(line: &str) -> (&str, &str, bool) {
    let mut rest = line;
    let mut end_of_info = 0;
    for _ in 0..8 {
        let Some(i) = rest.find(|c: char| !c.is_whitespace()) else {
            return ("", line, false);
        };
        let Some(j) = rest[i..].find(char::is_whitespace) else {
            return ("", line, false);
        };
        end_of_info += i + j;
        rest = &rest[i + j..];
    }
    let name_at = end_of_info + rest.len() - rest.trim_start().len();
    let name = &line[name_at..];
    let name = name.split(" -> ").next().unwrap_or(name);
    (&line[..name_at], name, line.starts_with('d'))
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A name as a relative URL path segment.
fn encode(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.contains(':') && !out.contains('/') {
        // `a:b` would read as a scheme.
        out.insert_str(0, "./");
    }
    out
}

/// The Content-Type of a file by its extension; octets when unknown.
pub fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map_or("", |(_, e)| e)
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html",
        "txt" | "text" | "md" | "log" => "text/plain",
        "css" => "text/css",
        "csv" => "text/csv",
        "js" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "iso" => "application/x-iso9660-image",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_lines_are_split_linked_and_escaped() {
        let list = "total 2\r\n-rw-r--r--   1 owner group   12 Dec 06 22:00 a <b>&c.txt\r\ndrwxr-xr-x   2 owner group 4096 Dec 06 22:00 sub dir\r\n";
        let page = listing("/pub/<x>/", list);
        assert!(page.contains("<title>Index of /pub/&lt;x&gt;/</title>"));
        assert!(
            page.contains("<a href=\"a%20%3Cb%3E&amp;c.txt\">a &lt;b&gt;&amp;c.txt</a>"),
            "{page}"
        );
        assert!(
            page.contains("<a href=\"sub%20dir/\">sub dir/</a>"),
            "{page}"
        );
        assert!(page.contains("Parent Directory"));
        assert!(!page.contains("total 2"));
    }

    #[test]
    fn types_by_extension() {
        assert_eq!(content_type("/a/b.TXT"), "text/plain");
        assert_eq!(content_type("/a/b.tar.gz"), "application/gzip");
        assert_eq!(content_type("/a/b"), "application/octet-stream");
    }
}
