"""Data: cohorts of NIfTI PET/CT scans, bounding boxes, preprocessing, caching and feeding Keras.

- :mod:`hnprog.data.cohort`: read HECKTOR 2020/2021/2022 folders or a CSV manifest, endpoints.
- :mod:`hnprog.data.dicom`: DICOM CT/PET/RTSTRUCT to NIfTI (SUV), the DICOM cohort layout,
  the predicted GTVt as an RTSTRUCT, the synthetic cohort as DICOM.
- :mod:`hnprog.data.clinical`: the HECKTOR 2021 clinical file (:func:`read_clinical`), Cox
  covariates from it.
- :mod:`hnprog.data.bbox`: bounding boxes in mm (HECKTOR ``bbox.csv``), the automatic PET box.
- :mod:`hnprog.data.preprocess`: preprocess one patient or a cohort (``failures.csv``).
- :mod:`hnprog.data.dataset`: crop cache, censoring-balanced sampler, ``keras.utils.PyDataset``.
- :mod:`hnprog.transforms`: the composable, geometry-aware transforms they are built from.

Submodules are imported on use (``hnprog.data.dataset`` imports Keras).
"""

from hnprog.data.clinical import read_clinical  # noqa: E402  (light: pandas only)

__all__ = ["read_clinical"]
