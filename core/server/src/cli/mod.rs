//! The command line: `modproxy [-d SERVER_ROOT] [-f CONFIG] COMMAND [ARGS]`,
//! like apache2's `-d` and `-f`.

mod daemon;
mod import;
mod modules;
mod scaffold;
mod vhosts;

use std::path::PathBuf;

const USAGE: &str = "usage: modproxy [-d SERVER_ROOT] [-f CONFIG] COMMAND [ARGS]

commands:
  run                 serve in the foreground (SIGTERM stops gracefully)
  start | stop        start the server as a daemon / stop it (pid file)
  restart             graceful restart: the new server takes over the sockets
  status              balancers, members and modules of the running server
  configtest          load config and modules, print Syntax OK or each problem
  enmod NAME...       enable modules (and what they depend on)
  dismod [-f] NAME... disable modules (-f also disables their dependants)
  ensite | dissite NAME...  enable or disable sites-available/NAME.toml
  modules             list available modules, and what the enabled ones register
  vhosts              the virtual hosts by listen address (apachectl -S)
  new-lbmethod NAME DIR [--api PATH]  write a third-party lbmethod crate that builds as is
  import APACHE_CONF [-o FILE]  convert an Apache configuration (exit 2: something was not converted)

  -d SERVER_ROOT      defaults to the current directory
  -f CONFIG           defaults to SERVER_ROOT/modproxy.toml (relative to SERVER_ROOT)

apachectl's spellings work too: -t (configtest), -M (modules), -S (the
virtual hosts and their listeners), -v (version),
-k start|stop|restart|graceful|graceful-stop";

/// The resolved -d and -f.
pub struct Paths {
    pub server_root: PathBuf,
    pub config: PathBuf,
}

pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (paths, command, rest) = match parse(&args) {
        Ok(x) => x,
        Err(msg) => {
            eprintln!("modproxy: {msg}\n\n{USAGE}");
            return 2;
        }
    };
    let rest: Vec<String> = rest.to_vec();
    let command = match apachectl(&command, &rest) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("modproxy: {msg}\n\n{USAGE}");
            return 2;
        }
    };
    match command.as_str() {
        "-S" | "vhosts" => vhosts::show(&paths),
        "run" => daemon::run(paths),
        "start" => daemon::start(paths),
        "stop" => daemon::stop(paths),
        "restart" => daemon::restart(paths),
        "status" => daemon::status(paths),
        "configtest" => daemon::configtest(paths),
        "enmod" => modules::switch(&paths, modules::Switch::EnableModule, &rest),
        "dismod" => modules::switch(&paths, modules::Switch::DisableModule, &rest),
        "ensite" => modules::switch(&paths, modules::Switch::EnableSite, &rest),
        "dissite" => modules::switch(&paths, modules::Switch::DisableSite, &rest),
        "modules" => modules::list(&paths),
        "new-lbmethod" => scaffold::new_lbmethod(&rest),
        "import" => import::run(&rest),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            0
        }
        "version" | "-v" | "--version" => {
            println!(
                "modproxy {} (module ABI {})",
                env!("CARGO_PKG_VERSION"),
                modproxy_api::abi::AbiVersion::CURRENT
            );
            0
        }
        other => {
            eprintln!("modproxy: unknown command {other:?}\n\n{USAGE}");
            2
        }
    }
}

/// apachectl's flags as the command they stand for: `-t` configtest,
/// `-M` modules, `-k ACTION` (restart and graceful are both modproxy's
/// graceful restart, graceful-stop is stop, which drains).
fn apachectl(command: &str, rest: &[String]) -> Result<String, String> {
    Ok(match command {
        "-t" => "configtest".into(),
        "-M" => "modules".into(),
        "-k" => match rest.first().map(String::as_str) {
            Some("start") => "start".into(),
            Some("stop") | Some("graceful-stop") => "stop".into(),
            Some("restart") | Some("graceful") => "restart".into(),
            Some(other) => {
                return Err(format!(
                    "-k {other}: use -k start, stop, restart, graceful or graceful-stop"
                ))
            }
            None => {
                return Err(
                    "-k needs an action: start, stop, restart, graceful or graceful-stop".into(),
                )
            }
        },
        other => other.to_string(),
    })
}

/// Whether `arg` is an apachectl flag after which `-d` and `-f` may still come.
fn is_flag_command(arg: &str) -> bool {
    matches!(arg, "-t" | "-M" | "-S" | "-v" | "-k")
}

fn parse(args: &[String]) -> Result<(Paths, String, &[String]), String> {
    // `modproxy -t -f x.toml`, as with apachectl: the paths may follow a flag.
    let mut first = 0;
    while first < args.len() && (args[first] == "-d" || args[first] == "-f") {
        first += 2;
    }
    if let Some(pos) = (first < args.len() && is_flag_command(&args[first])).then_some(first) {
        let takes_action = args[pos] == "-k";
        let end = pos + 1 + usize::from(takes_action);
        if end <= args.len() && args[end..].iter().any(|a| a == "-d" || a == "-f") {
            let mut reordered: Vec<String> = args[..pos].to_vec();
            reordered.extend_from_slice(&args[end..]);
            reordered.extend_from_slice(&args[pos..end]);
            let (paths, command, _) = parse(&reordered)?;
            return Ok((paths, command, &args[pos + 1..end]));
        }
    }
    let mut root: Option<PathBuf> = None;
    let mut config: Option<PathBuf> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-d" | "-f" => {
                let value = args
                    .get(i + 1)
                    .ok_or_else(|| format!("{} needs a value", args[i]))?;
                if args[i] == "-d" {
                    root = Some(PathBuf::from(value));
                } else {
                    config = Some(PathBuf::from(value));
                }
                i += 2;
            }
            _ => break,
        }
    }
    let command = args.get(i).ok_or("no command given")?.clone();
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let server_root = cwd.join(root.unwrap_or_else(|| PathBuf::from(".")));
    let server_root = server_root
        .canonicalize()
        .map_err(|e| format!("server root {}: {e}", server_root.display()))?;
    let config = server_root.join(config.unwrap_or_else(|| PathBuf::from("modproxy.toml")));
    Ok((
        Paths {
            server_root,
            config,
        },
        command,
        &args[i + 1..],
    ))
}
