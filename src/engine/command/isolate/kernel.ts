/**
 * Whether this kernel lets an unprivileged user create the user and network namespaces
 * `btrfly run --isolate` needs, and if not, the one line that says how to allow it.
 */

/** The sysctls that decide it; undefined where the file does not exist on this kernel. */
export interface UserNamespaceSysctls {
  /** Debian's and Ubuntu's kernel.unprivileged_userns_clone. */
  unprivilegedUsernsClone?: number;
  /** user.max_user_namespaces. */
  maxUserNamespaces?: number;
  /** Ubuntu 24.04's kernel.apparmor_restrict_unprivileged_userns. */
  apparmorRestrict?: number;
}

/** Why namespaces cannot be made, with the fix; undefined when nothing forbids them. */
export function userNamespaceProblem(s: UserNamespaceSysctls, isRoot: boolean): string | undefined {
  if (isRoot) return undefined;
  if (s.unprivilegedUsernsClone === 0) {
    return 'unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0): allow them with "sudo sysctl -w kernel.unprivileged_userns_clone=1" (persist it in /etc/sysctl.d/), or run without --isolate';
  }
  if (s.maxUserNamespaces === 0) {
    return 'user namespaces are disabled (user.max_user_namespaces = 0): allow them with "sudo sysctl -w user.max_user_namespaces=15000" (persist it in /etc/sysctl.d/), or run without --isolate';
  }
  if (s.apparmorRestrict === 1) {
    return 'AppArmor forbids unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1): allow them with "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" or an AppArmor profile for unshare, or run without --isolate';
  }
  return undefined;
}
