package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/zest-attest/zest/digests/firmware"
)

func (a *app) digestsFirmwareCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "firmware FILE",
		Short: "UEFI firmware volumes in a firmware image (e.g. OVMF_CODE.fd), nested and LZMA-compressed ones included",
		Long: `Lists every firmware volume in a UEFI firmware image with its name GUID,
length and SHA-256: candidates for PCR 0's EV_EFI_PLATFORM_FIRMWARE_BLOB
digests. OVMF measures PEIFV and DXEFV after copying them to RAM; DXEFV's
digest matches the file, PEIFV's is modified in RAM before it is measured
and can only be taken from a golden boot's event log.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := os.Stat(args[0])
			if err != nil {
				return err
			}
			if st.Size() > firmware.MaxImage {
				return fmt.Errorf("%s: %d bytes, more than the %d-byte limit for a firmware image", args[0], st.Size(), firmware.MaxImage)
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			vols, err := firmware.Parse(b)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			type volDoc struct {
				Path       string `json:"path"`
				Offset     int64  `json:"offset"`
				Depth      int    `json:"depth"`
				Name       string `json:"name"`
				FileSystem string `json:"filesystem"`
				Length     uint64 `json:"length"`
				SHA256     string `json:"sha256"`
			}
			docs := make([]volDoc, 0, len(vols))
			for _, v := range vols {
				name := ""
				if v.HasName() {
					name = v.Name.String()
				}
				docs = append(docs, volDoc{Path: v.Path, Offset: v.Offset, Depth: v.Depth, Name: name, FileSystem: v.FileSystem.String(), Length: v.Length, SHA256: hex.EncodeToString(v.SHA256[:])})
			}
			if asJSON {
				out, err := json.MarshalIndent(map[string]any{"volumes": docs}, "", "  ")
				if err != nil {
					return err
				}
				_, err = a.stdout.Write(append(out, '\n'))
				return err
			}
			for _, d := range docs {
				name := d.Name
				if name == "" {
					name = "(unnamed)"
				}
				fmt.Fprintf(a.stdout, "sha256:%s  %-36s  %#9x  %s\n", d.SHA256, name, d.Length, d.Path)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "machine-readable output")
	return c
}
