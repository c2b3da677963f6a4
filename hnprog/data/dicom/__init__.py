"""DICOM input and output (pydicom).

| module | holds |
| --- | --- |
| :mod:`hnprog.data.dicom.series` | scan a folder, group by series, choose one, read a volume |
| :mod:`hnprog.data.dicom.suv` | PET to body-weight SUV from the tags (BQML, CNTS, GML) |
| :mod:`hnprog.data.dicom.rtstruct` | RTSTRUCT ROI to a mask, and a mask to an RTSTRUCT |
| :mod:`hnprog.data.dicom.convert` | patient folders to the HECKTOR 2021 layout (``convert``) |
| :mod:`hnprog.data.dicom.cache` | the ``dicom`` cohort layout: converted once into a cache |
| :mod:`hnprog.data.dicom.export` | the predicted GTVt as an RTSTRUCT (``--dicom-out``) |
| :mod:`hnprog.data.dicom.write` | volumes as DICOM series; the synthetic cohort as DICOM |

Submodules are imported on use; pydicom only when a DICOM file is read or written.
"""
