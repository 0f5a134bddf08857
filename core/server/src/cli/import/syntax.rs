//! Apache configuration syntax: logical lines (comments dropped, `\`
//! continuations joined), the nesting of `<Section …>` blocks, and the
//! splitting of a directive's arguments into words as httpd's
//! `ap_getword_conf` does. Nothing here knows what a directive means.

use std::fmt;
use std::rc::Rc;

/// Where a line came from: file (as shown to the user) and line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: Rc<str>,
    pub line: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One directive or section as written, arguments not yet expanded
/// (`${VAR}` is expanded when the evaluator reaches it, as httpd does
/// when it reads the line).
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub args: String,
    pub at: Place,
    /// `Some` for a `<Section>`: what it holds.
    pub block: Option<Vec<Node>>,
}

impl Node {
    /// The line as written, for comments and reports.
    pub fn text(&self) -> String {
        let args = if self.args.is_empty() {
            String::new()
        } else {
            format!(" {}", self.args)
        };
        match self.block {
            Some(_) => format!("<{}{args}>", self.name),
            None => format!("{}{args}", self.name),
        }
    }
}

/// Parses one file's text into its directives and sections.
pub fn parse(file: &Rc<str>, text: &str) -> Result<Vec<Node>, String> {
    let mut stack: Vec<(Node, Vec<Node>)> = Vec::new();
    let mut top = Vec::new();
    for (line, body) in logical_lines(text) {
        let at = Place {
            file: file.clone(),
            line,
        };
        if let Some(close) = body.strip_prefix("</") {
            let name = close.trim_end_matches('>').trim();
            let Some((mut open, children)) = stack.pop() else {
                return Err(format!(
                    "{at}: </{name}> closes no section: remove it or add the <{name} …> it ends"
                ));
            };
            if !open.name.eq_ignore_ascii_case(name) {
                return Err(format!(
                    "{at}: </{name}> does not match <{}> opened at {}: close that one first",
                    open.name, open.at
                ));
            }
            open.block = Some(children);
            match stack.last_mut() {
                Some((_, siblings)) => siblings.push(open),
                None => top.push(open),
            }
        } else if let Some(open) = body.strip_prefix('<') {
            let Some(inner) = open.strip_suffix('>') else {
                return Err(format!(
                    "{at}: <{open} is missing its closing '>': end the line with >"
                ));
            };
            let (name, args) = split_name(inner);
            stack.push((
                Node {
                    name,
                    args,
                    at,
                    block: None,
                },
                Vec::new(),
            ));
        } else {
            let (name, args) = split_name(&body);
            let node = Node {
                name,
                args,
                at,
                block: None,
            };
            match stack.last_mut() {
                Some((_, siblings)) => siblings.push(node),
                None => top.push(node),
            }
        }
    }
    match stack.pop() {
        Some((open, _)) => Err(format!(
            "{}: <{}> is never closed: add </{}> after its last line",
            open.at, open.name, open.name
        )),
        None => Ok(top),
    }
}

fn split_name(s: &str) -> (String, String) {
    let s = s.trim();
    match s.split_once(char::is_whitespace) {
        Some((name, args)) => (name.to_string(), args.trim().to_string()),
        None => (s.to_string(), String::new()),
    }
}

/// Non-empty, non-comment lines with their first line number; a line
/// ending in `\` continues on the next, as in httpd.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let (start, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        if acc.is_empty() && line.trim_start().starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                acc.push_str(head);
                pending = Some((start, acc));
            }
            None => {
                acc.push_str(line);
                let body = acc.trim();
                if !body.is_empty() {
                    out.push((start, body.to_string()));
                }
            }
        }
    }
    if let Some((start, acc)) = pending {
        if !acc.trim().is_empty() {
            out.push((start, acc.trim().to_string()));
        }
    }
    out
}

/// Splits arguments into words: whitespace separates them, a word that
/// starts with `"` or `'` runs to the matching quote (a backslash escapes
/// it), as `ap_getword_conf` does.
pub fn words(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = args.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return out;
        };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.peek() == Some(&first) || chars.peek() == Some(&'\\') => {
                        word.push(chars.next().unwrap_or(c));
                    }
                    c if c == first => break,
                    c => word.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Rc<str> {
        Rc::from("t.conf")
    }

    #[test]
    fn sections_nest_and_comments_and_continuations_go() {
        let text = "# a comment\nListen 80\n<VirtualHost *:80>\n  ProxyPass / \\\n     http://b/\n  <Location /x>\n    SetHandler balancer-manager\n  </Location>\n</virtualhost>\n";
        let nodes = parse(&file(), text).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(
            (nodes[0].name.as_str(), nodes[0].args.as_str()),
            ("Listen", "80")
        );
        let vhost = &nodes[1];
        assert_eq!(
            (vhost.name.as_str(), vhost.args.as_str(), vhost.at.line),
            ("VirtualHost", "*:80", 3)
        );
        let inner = vhost.block.as_ref().unwrap();
        assert_eq!(inner[0].args, "/      http://b/");
        assert_eq!(inner[0].at.to_string(), "t.conf:4");
        assert_eq!(inner[1].block.as_ref().unwrap()[0].name, "SetHandler");
        assert_eq!(inner[1].text(), "<Location /x>");
    }

    #[test]
    fn unbalanced_sections_say_where_and_what_to_do() {
        let e = parse(&file(), "<VirtualHost *:80>\nProxyPass / http://b/\n").unwrap_err();
        assert_eq!(
            e,
            "t.conf:1: <VirtualHost> is never closed: add </VirtualHost> after its last line"
        );
        let e = parse(&file(), "<Location />\n</VirtualHost>\n").unwrap_err();
        assert!(
            e.starts_with("t.conf:2: </VirtualHost> does not match <Location> opened at t.conf:1"),
            "{e}"
        );
        let e = parse(&file(), "</Proxy>\n").unwrap_err();
        assert!(e.contains("closes no section"), "{e}");
    }

    #[test]
    fn words_follow_ap_getword_conf() {
        assert_eq!(
            words(r#"  / "http://a b/" 'x\'y' k=v  "#),
            ["/", "http://a b/", "x'y", "k=v"]
        );
        assert_eq!(
            words(r#""%h %l \"%r\"" combined"#),
            [r#"%h %l "%r""#, "combined"]
        );
        assert!(words("   ").is_empty());
    }
}
