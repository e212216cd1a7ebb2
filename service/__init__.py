"""HTTP side of facesvc: the Flask app, Baidu's routes, auth, errors and the face library."""
