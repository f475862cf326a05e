"""Readers and writers of inputs: manifests, images and masks (NIfTI, NRRD, DICOM series, RTSTRUCT,
SEG), voxel grids, input-sheet schemas and ingest quality control."""
