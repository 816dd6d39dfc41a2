#!/usr/bin/env python3
"""Builds refstate-secureboot.json from Keylime's secure-boot fixture log.

An independent source for the schema tests: this walks the TCG crypto-agile
event log with the Python standard library (no zest code, no Keylime code)
and writes the refstate fields the way keylime-policy create measured-boot
documents them (reference notes keylime-mb-refstate.md §5 and §13.1).

Usage: make_refstate.py ../../fixtures/keylime/create-mb-policy/binary_bios_measurements-secureboot > refstate-secureboot.json
"""
import hashlib
import json
import re
import struct
import sys
import uuid

EV_S_CRTM_VERSION = 0x8
EV_IPL = 0xD
EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008
EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000000A
EV_EFI_VARIABLE_AUTHORITY = 0x800000E0
DIGEST_SIZES = {0x4: 20, 0xB: 32, 0xC: 48, 0xD: 64, 0x12: 32}


def guid(b):
    return str(uuid.UUID(bytes_le=bytes(b)))


def events(log):
    # First event: TCG_PCClientPCREvent (SHA-1 format, 32-byte header).
    _, _, size = struct.unpack_from("<II20xI", log, 0)
    off = 32 + size
    while off < len(log):
        pcr, typ, count = struct.unpack_from("<III", log, off)
        off += 12
        digests = {}
        for _ in range(count):
            (alg,) = struct.unpack_from("<H", log, off)
            n = DIGEST_SIZES[alg]
            digests[alg] = log[off + 2 : off + 2 + n].hex()
            off += 2 + n
        (size,) = struct.unpack_from("<I", log, off)
        off += 4
        yield pcr, typ, digests, log[off : off + size]
        off += size


def variable(data):
    name_len, data_len = struct.unpack_from("<QQ", data, 16)
    name = data[32 : 32 + 2 * name_len].decode("utf-16-le")
    return name, data[32 + 2 * name_len : 32 + 2 * name_len + data_len]


def signature_lists(data):
    sigs = []
    off = 0
    while off < len(data):
        list_size, header_size, sig_size = struct.unpack_from("<III", data, off + 16)
        body = off + 28 + header_size
        for s in range(body, off + list_size, sig_size):
            sigs.append({"SignatureOwner": guid(data[s : s + 16]), "SignatureData": "0x" + data[s + 16 : s + sig_size].hex()})
        off += list_size
    return sigs


def sha256(digests):
    return {"sha256": "0x" + digests[0xB]}


def main():
    log = open(sys.argv[1], "rb").read()
    ref = {"has_secureboot": False, "scrtm_and_bios": [{"platform_firmware": []}], "pk": [], "kek": [], "db": [], "dbx": [],
           "vendor_db": [], "mokdig": [], "mokxdig": [], "kernels": [{}]}
    bsas = []
    for pcr, typ, digests, data in events(log):
        if typ == EV_S_CRTM_VERSION and "scrtm" not in ref["scrtm_and_bios"][0]:
            ref["scrtm_and_bios"][0]["scrtm"] = sha256(digests)
        elif typ in (EV_EFI_PLATFORM_FIRMWARE_BLOB, EV_EFI_PLATFORM_FIRMWARE_BLOB2):
            ref["scrtm_and_bios"][0]["platform_firmware"].append(sha256(digests))
        elif typ == EV_EFI_VARIABLE_DRIVER_CONFIG:
            name, value = variable(data)
            if name == "SecureBoot":
                ref["has_secureboot"] = value == b"\x01"
            elif name.lower() in ("pk", "kek", "db", "dbx"):
                ref[name.lower()] = signature_lists(value)
        elif typ == EV_EFI_VARIABLE_AUTHORITY:
            name, value = variable(data)
            if name.lower() == "vendor_db":
                ref["vendor_db"].append({"SignatureOwner": guid(value[:16]), "SignatureData": "0x" + value[16:].hex()})
        elif typ == EV_EFI_BOOT_SERVICES_APPLICATION:
            bsas.append("0x" + digests[0xB])
        elif typ == EV_IPL:
            text = data.rstrip(b"\0").decode()
            if pcr == 14 and text == "MokList":
                ref["mokdig"].append(sha256(digests))
            elif pcr == 14 and text == "MokListX":
                ref["mokxdig"].append(sha256(digests))
            elif pcr == 9 and re.search("initrd|initramfs", text) and "initrd_plain_sha256" not in ref["kernels"][0]:
                ref["kernels"][0]["initrd_plain_sha256"] = "0x" + digests[0xB]
            elif pcr == 8 and text.startswith("kernel_cmdline: ") and "kernel_cmdline" not in ref["kernels"][0]:
                ref["kernels"][0]["kernel_cmdline"] = re.escape(text[len("kernel_cmdline: "):])
    k = ref["kernels"][0]
    k["shim_authcode_sha256"], k["grub_authcode_sha256"], k["kernel_authcode_sha256"] = bsas[:3]
    json.dump(ref, sys.stdout, indent=1)
    sys.stdout.write("\n")


main()
