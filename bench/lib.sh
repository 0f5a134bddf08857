# Shared by the bench scripts: build the `dist` profile (LTO) and make a
# server root whose descriptors point at those libraries.
#   dist_root DIR  -> DIR/mods-available, DIR/mods-enabled (the four modules)
DIST_MODULES=(proxy proxy_http proxy_balancer lbmethod_byrequests)

build_dist() {
  local pkgs=(-p modproxy)
  for m in "${DIST_MODULES[@]}"; do pkgs+=(-p "mod_$m"); done
  cargo build --profile dist "${pkgs[@]}" >&2
}

dist_root() {
  local root=$1 m
  mkdir -p "$root/mods-available" "$root/mods-enabled"
  for m in "${DIST_MODULES[@]}"; do
    sed "s|^library = .*|library = \"$PWD/target/dist/libmod_$m.so\"|" "mods-available/$m.toml" > "$root/mods-available/$m.toml"
    ln -s "../mods-available/$m.toml" "$root/mods-enabled/$m.toml"
  done
}
