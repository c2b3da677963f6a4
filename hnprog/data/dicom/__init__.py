"""DICOM input and output: series reading, PET to SUV, RTSTRUCT, conversion to NIfTI."""
