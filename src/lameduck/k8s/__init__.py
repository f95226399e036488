"""Kubernetes and container configuration: manifest loading, the shutdown rules, reports and rendering.

Pure functions over text and data (manifest → findings, settings → manifests); the CLI does the reading and
printing. Imported only by ``lameduck k8s``, never by the serve path.
"""
