"""Version profiles: what a given Proxmox VE release looks like from its API.

A profile is data: the version strings the release reports and the behaviour switches (emitted JSON types,
optional keys, auth features) that differ between releases. Every switch cites the section of
``../shared/pve-notes.md`` it comes from; most are thresholds on (major, minor), a few (``late``) describe
point-release updates that changed behaviour inside a minor release.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Profile:
    """One PVE release as seen over the API."""

    name: str  #: profile key, e.g. ``"8.4"`` or ``"9.1-latest"``
    version: str  #: ``/version`` ``version`` (``"5.4"``, ``"6.4-13"``, ``"8.2.4"``)
    release: str  #: ``/version`` ``release`` (package revision on 5.x, ``"x.y"`` later)
    repoid: str  #: 8 hex (≤7.x) or 16 hex (8+)
    kernel: str  #: running kernel release, e.g. ``"6.8.12-9-pve"``
    kernel_version: str  #: ``uname -v`` text
    apidata: str  #: snapshot name in ``data/apidata.json``
    late: bool = False  #: late point-release updates (unified auth error text, §2a)

    @cached_property
    def major_minor(self) -> tuple[int, int]:
        base = self.name.split("-")[0]
        major, minor = base.split(".")
        return int(major), int(minor)

    def at_least(self, major: int, minor: int) -> bool:
        return self.major_minor >= (major, minor)

    # --- §0 / §9 envelope -------------------------------------------------------------------------
    @property
    def error_message_in_body(self) -> bool:
        """pve-http-server 5.2.0 (Jan 2025, shipped with 8.4) also puts the error text into ``message``."""
        return self.at_least(8, 4)

    # --- §1 /version ------------------------------------------------------------------------------
    @property
    def version_has_datacenter_keys(self) -> bool:
        """≤7.0 returns the whole datacenter.cfg in /version; 7.1+ only ``console``."""
        return not self.at_least(7, 1)

    @property
    def pveversion(self) -> str:
        """``pveversion`` of node status: ``pve-manager/<version text>``."""
        if self.at_least(6, 0):
            return f"pve-manager/{self.version}/{self.repoid}"
        return f"pve-manager/{self.version}-{self.release}/{self.repoid}"

    # --- §2 auth ----------------------------------------------------------------------------------
    @property
    def api_tokens(self) -> bool:
        return self.at_least(6, 2)

    @property
    def unified_auth_error(self) -> bool:
        """Commit 26c10a2e: every auth-handler 401 reads ``Authentication failed!`` (9.1.5, late 8.4.x)."""
        return self.late

    @property
    def tfa_style(self) -> str:
        """``otp`` (5.0–5.3 realm OTP), ``tfa-api`` (5.4–7.0 ``POST /access/tfa``), ``challenge`` (7.1+)."""
        if self.at_least(7, 1):
            return "challenge"
        if self.at_least(5, 4):
            return "tfa-api"
        return "otp"

    # --- §3 permissions ---------------------------------------------------------------------------
    @property
    def pool_audit(self) -> bool:
        """``Pool.Audit`` exists from 7.0; before, pool entries need ``Pool.Allocate``."""
        return self.at_least(7, 0)

    @property
    def guest_agent_privs(self) -> bool:
        """9.0 replaces ``VM.Monitor`` by ``VM.GuestAgent.*``."""
        return self.at_least(9, 0)

    # --- §4 nodes ---------------------------------------------------------------------------------
    @property
    def cpuinfo_flags(self) -> bool:
        return self.at_least(6, 0)

    @property
    def cpuinfo_hvm_string(self) -> bool:
        return self.at_least(6, 0)

    @property
    def cpuinfo_cores(self) -> bool:
        return self.at_least(6, 2)

    @property
    def node_boot_info(self) -> bool:
        return self.at_least(8, 1)

    @property
    def memory_available(self) -> bool:
        return self.at_least(9, 0)

    @property
    def ssl_fingerprint(self) -> bool:
        return self.at_least(5, 2)

    # --- §5 cluster/status ------------------------------------------------------------------------
    @property
    def cluster_status_null_ip(self) -> bool:
        """5.x/6.0 emit ``"ip": null`` for unknown IPs; 6.1+ omit the key."""
        return not self.at_least(6, 1)

    # --- §6 cluster/resources ---------------------------------------------------------------------
    @property
    def resources_lock(self) -> bool:
        return self.at_least(6, 0)

    @property
    def resources_tags(self) -> bool:
        return self.at_least(7, 3)

    @property
    def cgroup_mode(self) -> bool:
        return self.at_least(7, 3)

    @property
    def memhost(self) -> bool:
        return self.at_least(9, 0)

    @property
    def storage_content(self) -> bool:
        return self.at_least(6, 3)

    @property
    def storage_plugintype(self) -> bool:
        """Code: pve-manager 77a9ce32 (2020-11-24, 6.3-1); the schema documents it from 6.4."""
        return self.at_least(6, 3)

    @property
    def storage_shared(self) -> bool:
        """Code: pve-manager 1ce3fa3b (2018-11-21, 5.3-1); the schema documents it only in 9.1.x."""
        return self.at_least(5, 3)

    # --- §7 guests --------------------------------------------------------------------------------
    @property
    def qemu_list_legacy_types(self) -> bool:
        """<7.0: ``pid: null`` for stopped VMs and ``template: ""``; 7.0+ omit both unless set."""
        return not self.at_least(7, 0)

    @property
    def lxc_vmid_string(self) -> bool:
        """LXC list ``vmid`` is a JSON string until pve-container 5.0.10 (8.2)."""
        return not self.at_least(8, 2)

    @property
    def lxc_disk_string(self) -> bool:
        """Running CTs report ``disk``/``maxdisk`` as strings until 7.0."""
        return not self.at_least(7, 0)

    @property
    def guest_lock_in_lists(self) -> bool:
        return self.at_least(5, 4)

    @property
    def guest_tags(self) -> bool:
        return self.at_least(6, 1)

    @property
    def running_machine(self) -> bool:
        return self.at_least(6, 4)

    @property
    def qemu_memory_string(self) -> bool:
        """QEMU config ``memory`` is a property string (JSON string) from qemu-server 8.1."""
        return self.at_least(8, 1)

    @property
    def status_clipboard(self) -> bool:
        return self.at_least(8, 1)

    @property
    def stopped_status_without_vmid(self) -> bool:
        """The 5.0 capture of a stopped VM's status/current has no ``vmid`` key."""
        return self.major_minor == (5, 0)

    # --- §8 guest IPs -----------------------------------------------------------------------------
    @property
    def agent_get_endpoints(self) -> bool:
        return self.at_least(5, 2)

    @property
    def agent_legacy_texts(self) -> bool:
        """≤5.2: ``No Qemu Guest Agent`` and no guest-ping pre-check, a dead agent times out instead
        (qemu-server 87f5df81 "check if qga service is running" 2018-05 and 804fffdf letter case 2018-07,
        both after the 5.2 release)."""
        return not self.at_least(5, 3)

    @property
    def lxc_interfaces_ip_addresses(self) -> bool:
        """8.4+ adds ``hardware-address`` and ``ip-addresses[]`` to ``/lxc/{vmid}/interfaces``."""
        return self.at_least(8, 4)

    @property
    def qga_statistics(self) -> bool:
        """Newer QGA builds add ``statistics`` to network-get-interfaces (guest side; tied to era here)."""
        return self.at_least(6, 0)


def _p(  # noqa: PLR0917 - compact release table below
    name: str,
    version: str,
    release: str,
    repoid: str,
    kernel: str,
    kdate: str,
    apidata: str | None = None,
    *,
    late: bool = False,
) -> Profile:
    kbuild = kernel.removesuffix("-pve")
    return Profile(
        name=name,
        version=version,
        release=release,
        repoid=repoid,
        kernel=kernel,
        kernel_version=f"#1 SMP PVE {kbuild} ({kdate})",
        apidata=apidata or name,
        late=late,
    )


#: All supported profiles, keyed by name. Version strings follow pve-notes §1 (real examples where known).
PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        _p("5.0", "5.0", "23", "af4267bf", "4.10.15-1-pve", "Fri, 23 Jun 2017 08:57:55 +0200"),
        _p("5.1", "5.1", "41", "0b958203", "4.13.13-2-pve", "Tue, 19 Dec 2017 10:34:12 +0100"),
        _p("5.2", "5.2", "12", "ba196e4b", "4.15.17-1-pve", "Mon, 14 May 2018 11:22:17 +0200"),
        _p("5.3", "5.3", "5", "97ae681d", "4.15.18-9-pve", "Wed, 28 Nov 2018 10:56:36 +0100"),
        _p("5.4", "5.4", "15", "d0ec33c6", "4.15.18-12-pve", "Mon, 1 Apr 2019 12:12:14 +0200"),
        _p("6.0", "6.0-4", "6.0", "2a719255", "5.0.15-1-pve", "Wed, 03 Jul 2019 10:51:57 +0200"),
        _p("6.1", "6.1-8", "6.1", "806edfe1", "5.3.18-3-pve", "Tue, 17 Mar 2020 16:33:19 +0100"),
        _p("6.2", "6.2-4", "6.2", "9824574a", "5.4.34-1-pve", "Mon, 25 May 2020 15:21:33 +0200"),
        _p("6.3", "6.3-3", "6.3", "eee5f901", "5.4.78-2-pve", "Thu, 03 Dec 2020 14:26:17 +0100"),
        _p("6.4", "6.4-13", "6.4", "9f411e79", "5.4.106-1-pve", "Fri, 26 Mar 2021 12:39:48 +0100"),
        _p("7.0", "7.0-11", "7.0", "63d82f4e", "5.11.22-4-pve", "Tue, 20 Jul 2021 21:40:46 +0200"),
        _p("7.1", "7.1-7", "7.1", "df5740ad", "5.13.19-2-pve", "Tue, 07 Dec 2021 14:17:29 +0100"),
        _p("7.2", "7.2-3", "7.2", "c743d6c0", "5.15.30-2-pve", "Mon, 25 Apr 2022 12:32:15 +0200"),
        _p("7.3", "7.3-3", "7.3", "c3928077", "5.15.74-1-pve", "Mon, 14 Nov 2022 20:17:15 +0100"),
        _p("7.4", "7.4-16", "7.4", "0f39f621", "5.15.102-1-pve", "Thu, 16 Mar 2023 13:09:54 +0100"),
        _p("8.0", "8.0.3", "8.0", "bbf3993334bfa916", "6.2.16-3-pve", "Wed, 21 Jun 2023 09:36:35 +0200"),
        _p("8.1", "8.1.4", "8.1", "ec5affc9e41f1d79", "6.5.11-7-pve", "Wed, 20 Dec 2023 14:34:06 +0100"),
        _p("8.2", "8.2.4", "8.2", "faa83925c9641325", "6.8.8-2-pve", "Mon, 17 Jun 2024 12:06:51 +0200"),
        _p("8.3", "8.3.2", "8.3", "3e76eec21c4a14a7", "6.8.12-5-pve", "Tue, 26 Nov 2024 13:17:58 +0100"),
        _p("8.4", "8.4.1", "8.4", "2a5fa54a8503f96d", "6.8.12-9-pve", "Thu, 27 Mar 2025 12:56:04 +0100"),
        _p(
            "8.4-latest",
            "8.4.16",
            "8.4",
            "368e3c45c15b895c",
            "6.8.12-18-pve",
            "Mon, 19 Jan 2026 10:11:36 +0100",
            "8.4",
            late=True,
        ),
        _p("9.0", "9.0.4", "9.0", "39d8a4de7dfb2c40", "6.14.8-2-pve", "Fri, 01 Aug 2025 11:42:04 +0200"),
        _p("9.1", "9.1.1", "9.1", "42db4a6cf33dac83", "6.17.2-1-pve", "Tue, 18 Nov 2025 09:02:24 +0100"),
        _p(
            "9.1-latest",
            "9.1.5",
            "9.1",
            "7b1bc34e8af2a1e6",
            "6.17.4-2-pve",
            "Thu, 29 Jan 2026 15:01:13 +0100",
            late=True,
        ),
    )
}


def get_profile(name: str) -> Profile:
    """The profile called ``name`` (``ValueError`` listing the known ones otherwise)."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise ValueError(f"unknown PVE profile {name!r}; known: {known}") from None
